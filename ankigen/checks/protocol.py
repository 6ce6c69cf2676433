"""Length-prefixed JSON: the runner and its warm servers speak it over pipes, a kept runner
and its clients over a unix socket (keeper.py); nothing else crosses either."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from typing import Any

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 64 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def send(fd: int, message: dict[str, Any]) -> None:
    data = encode(message)
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = read(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message(read: Callable[[int], bytes]) -> dict[str, Any] | None:
    """The next message from `read` (os.read on a pipe, a socket's recv), or None when the
    other side has gone or sent something too big to be ours."""
    header = _read_exact(read, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE:
        return None
    body = _read_exact(read, size)
    if body is None:
        return None
    result: dict[str, Any] = json.loads(body)
    return result


def receive(fd: int) -> dict[str, Any] | None:
    """The next message on a pipe, or None when the other side has gone."""
    return read_message(lambda n: os.read(fd, n))
