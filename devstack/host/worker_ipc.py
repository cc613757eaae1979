"""Frames between the host and its worker processes: a 4-byte length, then a pickled tuple.

Why pickle over a socket pair and not gRPC: the real host and worker speak gRPC with protobuf
TypedData, but what matters locally is what crosses the boundary (a trigger `Datum` with its
metadata in, an encoded `$return` and outputs back), not the wire format. Both ends are this
runner, started from the same interpreter, so pickle is safe here.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

_LENGTH = struct.Struct(">I")


def frame(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None when the other end has gone away."""
    try:
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        message: tuple[Any, ...] = pickle.loads(await reader.readexactly(length))  # noqa: S301 - our own child
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return message
