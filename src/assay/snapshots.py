"""A state as a list of frames in one byte string (checkpoints): Arrow IPC with zstd, length-prefixed.

zstd writes a stream worker's checkpoint in less than half the bytes of LZ4 (a delta of ten
seconds of the stream benchmark: 11.0 against 23.9 MB) for a fifth more CPU, which the
database more than gives back (it spends ~6 ms of a core per megabyte stored). Reading
accepts the LZ4 and uncompressed frames of earlier checkpoints too. The engine nests its
detectors' byte strings as parts of its own (``join_parts``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Deferred:
    """A frame built only when it is serialized, from copies taken at capture: building it
    (a Python loop over every key, a sort of every id) then leaves the engine's thread, where
    it paused every partition's micro-batches (40-80 ms per checkpoint on the stream benchmark)."""

    build: Callable[[], pl.DataFrame]
    size: int = 0  # estimated bytes


Frame = pl.DataFrame | Deferred


# how many times as long as a step of serializing or storing a checkpoint took to pause after
# it; a function when it depends on the moment (a worker pauses only while it is pushing)
Pace = float | Callable[[], float]


def pause_after(pace: Pace, took: float) -> None:
    factor = pace() if callable(pace) else pace
    if factor > 0:
        time.sleep(factor * took)


def resolve(frame: Frame) -> pl.DataFrame:
    return frame.build() if isinstance(frame, Deferred) else frame


def estimated_size(frame: Frame) -> int:
    return frame.size if isinstance(frame, Deferred) else int(frame.estimated_size())


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


# A frame of more rows is written as IPC files of this many rows each (after SLICED), so
# that a paced serialization (``pace``) never works for more than a few milliseconds at a
# time: a stream worker's micro-batches go on between the slices
SLICE_ROWS = 1 << 16
SLICED = b"ASSAY-SLICES1"


def frame_to_bytes(frame: Frame, pace: Pace = 0.0) -> bytes:
    """``pace``: after each step (building a deferred frame, writing a slice), sleep this many
    times as long as it took."""
    started = time.perf_counter()
    whole = resolve(frame)
    pause_after(pace, time.perf_counter() - started)
    pieces = [whole] if whole.height <= SLICE_ROWS else \
        [whole.slice(start, SLICE_ROWS) for start in range(0, whole.height, SLICE_ROWS)]
    out = []
    for piece in pieces:
        started = time.perf_counter()
        buf = io.BytesIO()
        piece.write_ipc(buf, compression="zstd")
        out.append(buf.getvalue())
        pause_after(pace, time.perf_counter() - started)
    return out[0] if len(out) == 1 else SLICED + join_parts(out)


def frame_from_bytes(data: bytes) -> pl.DataFrame:
    if data.startswith(SLICED):
        return pl.concat([pl.read_ipc(io.BytesIO(p)) for p in split_parts(data[len(SLICED):])], rechunk=False)
    return pl.read_ipc(io.BytesIO(data))


def frames_to_bytes(frames: list[Frame]) -> bytes:
    return join_parts([frame_to_bytes(f) for f in frames])


def frames_from_bytes(data: bytes) -> list[pl.DataFrame]:
    return [frame_from_bytes(p) for p in split_parts(data)]
