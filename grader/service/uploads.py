"""Reading uploads within their limits, and decoding a recall file as ankigen reads notes."""

from __future__ import annotations

from fastapi import UploadFile

from ankigen.text import decode

from .crud import clean_name
from .errors import TooLarge

CHUNK = 1 << 16


async def read_limited(file: UploadFile, limit: int, what: str) -> bytes:
    """The upload's bytes, refusing it (413) as soon as it passes `limit`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{file.filename or what}: more than {limit} bytes; a {what} may be "
                           f"at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def recall_text(filename: str, data: bytes) -> tuple[str, str]:
    """(clean name, text): any encoding and mojibake repaired as `ankigen build` would."""
    name = clean_name(filename, (".md", ".markdown", ".txt"))
    return name, decode(data, name).text
