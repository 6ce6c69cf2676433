"""Bearer tokens (stored hashed, compared in constant time, revocable) and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> tuple[str, str, str]:
    """(token to show once, its id, the hash to store). The id finds the row; the secret,
    hashed, is compared in constant time, so a lookup never leaks how much of it matched."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{token_id}.{secret}", token_id, hash_secret(secret)


def hash_secret(secret: str) -> str:
    # 256 random bits need no slow hash: nothing to brute-force from a leaked hash.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    token_id, dot, secret = token.strip().partition(".")
    if not dot or len(token_id) != 16 or not secret:
        return None
    return token_id, secret


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def same(a: str, b: str) -> bool:
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())
