"""A state as a list of frames in one byte string (checkpoints): Arrow IPC with LZ4, length-prefixed.

LZ4 roughly halves what a stream worker writes to the store at every checkpoint, at a
small cost in CPU; reading accepts uncompressed frames of earlier checkpoints too. The
engine nests its detectors' byte strings as parts of its own (``join_parts``).
"""

from __future__ import annotations

import io

import polars as pl


def join_parts(parts: list[bytes]) -> bytes:
    """Byte strings in one, each after its length (8 bytes, little-endian)."""
    return b"".join(len(p).to_bytes(8, "little") + p for p in parts)


def split_parts(data: bytes) -> list[bytes]:
    """The byte strings ``join_parts`` joined."""
    parts = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 8], "little")
        parts.append(data[pos + 8:pos + 8 + size])
        pos += 8 + size
    return parts


def frame_to_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="lz4")
    return buf.getvalue()


def frame_from_bytes(data: bytes) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(data))


def frames_to_bytes(frames: list[pl.DataFrame]) -> bytes:
    return join_parts([frame_to_bytes(f) for f in frames])


def frames_from_bytes(data: bytes) -> list[pl.DataFrame]:
    return [frame_from_bytes(p) for p in split_parts(data)]
