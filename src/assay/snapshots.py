"""A state as a list of frames in one byte string (checkpoints): Arrow IPC with LZ4, length-prefixed.

LZ4 roughly halves what a stream worker writes to the store at every checkpoint, at a
small cost in CPU; reading accepts uncompressed frames of earlier checkpoints too.
"""

from __future__ import annotations

import io

import polars as pl


def frames_to_bytes(frames: list[pl.DataFrame]) -> bytes:
    buf = io.BytesIO()
    for frame in frames:
        part = io.BytesIO()
        frame.write_ipc(part, compression="lz4")
        data = part.getvalue()
        buf.write(len(data).to_bytes(8, "little"))
        buf.write(data)
    return buf.getvalue()


def frames_from_bytes(data: bytes) -> list[pl.DataFrame]:
    frames = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 8], "little")
        frames.append(pl.read_ipc(io.BytesIO(data[pos + 8:pos + 8 + size])))
        pos += 8 + size
    return frames
