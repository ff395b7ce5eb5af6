"""State serialization: frames in one byte string, sliced and paced for a stream worker."""

from __future__ import annotations

import io

import polars as pl
import pytest

from assay import snapshots
from assay.snapshots import (
    Deferred,
    frame_from_bytes,
    frame_to_bytes,
    frames_from_bytes,
    frames_to_bytes,
)


def test_a_frame_of_many_rows_is_written_in_slices_and_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "SLICE_ROWS", 4)
    frame = pl.DataFrame({"_key": [f"k{i}" for i in range(10)], "_ts": list(range(10))})
    data = frame_to_bytes(frame)
    assert data.startswith(snapshots.SLICED)
    assert frame_from_bytes(data).equals(frame)
    assert frame_from_bytes(frame_to_bytes(frame.head(4))).equals(frame.head(4))  # one slice: plain IPC
    assert frame_from_bytes(frame_to_bytes(frame.clear())).equals(frame.clear())


def test_pacing_and_deferred_frames_give_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "SLICE_ROWS", 3)
    frame = pl.DataFrame({"a": list(range(7))})
    built = []
    deferred = Deferred(lambda: built.append(1) or frame, size=56)
    assert frames_to_bytes([frame, deferred]) == frames_to_bytes([frame, frame])
    assert frame_to_bytes(frame, pace=0.5) == frame_to_bytes(frame)
    asked = []  # a pace read at every step (a worker pauses only while it is pushing)
    assert frame_to_bytes(frame, pace=lambda: asked.append(1) or 0.0) == frame_to_bytes(frame)
    assert len(asked) == 1 + 3  # building it, then its three slices
    assert built == [1]  # built when serialized, once
    assert [f.equals(frame) for f in frames_from_bytes(frames_to_bytes([frame, deferred]))] == [True, True]


def test_frames_of_earlier_checkpoints_still_read() -> None:
    """LZ4 (and uncompressed) IPC, as checkpoints were written before zstd."""
    frame = pl.DataFrame({"_key": ["a", "b"], "_ts": [1, 2]})
    for compression in ("lz4", "uncompressed"):
        buf = io.BytesIO()
        frame.write_ipc(buf, compression=compression)
        assert frame_from_bytes(buf.getvalue()).equals(frame)
