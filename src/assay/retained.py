"""The rows one detector keeps for one partition: the relevant rows still inside a window.

A worker runs one engine for all its partitions, but SPEC's watermark belongs to each
partition, so each partition's rows expire on their own clock. ``Retained`` holds one
partition's rows in canonical order (they arrive in it: each micro-batch starts above the
partition's watermark), appended at the end and cut at the front: they are the rows at
positions [cut, appended) of every row the partition ever retained, so expiry cuts a
prefix and a delta snapshot is the rows appended since the last one.

Rows carry their partition in ``_seq`` (``partition << LANE_SHIFT | arrival number``):
sequence numbers stay unique across the partitions of one engine, ties in ``ts`` break by
arrival within a partition, and a row's partition is read off its ``_seq``. Partition 0's
numbers are plain arrival numbers (a batch run, and checkpoints of earlier versions).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from .key_index import KeyIndex, key_hashes

# the most rows a segment of retained rows grows to by appends (see ``Retained``)
SEGMENT_ROWS = 1 << 18

LANE_SHIFT = 40  # a partition numbers up to 2**40 rows (a million a second for 12 days... x 1,000)


def lane_base(partition: int) -> int:
    """The first ``_seq`` of a partition's rows."""
    return partition << LANE_SHIFT


def runs(lanes: np.ndarray) -> list[tuple[int, int, int]]:
    """(partition, start, stop) of each run in a non-decreasing array of partition numbers."""
    numbers, starts = np.unique(lanes, return_index=True)
    stops = [*starts[1:].tolist(), lanes.size]
    return [(int(n), int(a), int(b)) for n, a, b in zip(numbers, starts, stops, strict=True)]


def lanes_of(seq: np.ndarray) -> tuple[list[tuple[int, int, int]], np.ndarray | None]:
    """The partitions of rows with these ``_seq``, as (partition, start, stop) runs, and the
    order that makes each partition's rows one run (None: they are already)."""
    lane = seq >> LANE_SHIFT
    if lane.size == 0:
        return [(0, 0, 0)], None
    if lane[0] == lane[-1] and bool((lane == lane[0]).all()):
        return [(int(lane[0]), 0, lane.size)], None
    order = None
    if not bool((lane[1:] >= lane[:-1]).all()):  # the engine passes them in runs; others may not
        order = np.argsort(lane, kind="stable")
        lane = lane[order]
    return runs(lane), order


def stack(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames of one schema one after another, their chunks kept: ``pl.concat`` without its
    Python-side checks (48 -> 2 us a call for small frames; a micro-batch makes dozens a
    partition). Different schemas raise, as a vertical ``pl.concat`` does."""
    out = frames[0]
    for frame in frames[1:]:
        out = out.vstack(frame)
    return out


def _one_chunk(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.rechunk() if rows.n_chunks() > 1 else rows


def rows_of_keys(found: list[tuple[Retained, tuple[np.ndarray, np.ndarray] | None]],
                 keys: pl.Series) -> pl.DataFrame:
    """The rows of these keys among partitions' retained rows. Each partition's rows come with
    what ``Retained.positions`` found: (positions to gather, for each the number of a row of
    ``keys`` with the same key hash), or None (all of them, to scan)."""
    parts: list[pl.DataFrame] = []
    gathered = [kept.gather(*pos) for kept, pos in found if pos is not None]
    if gathered:
        picked = stack([rows for rows, _ in gathered])
        # A row with the key of the fresh row whose hash found it is wanted; one with another
        # key came by a hash collision (rare with 64-bit hashes), and is wanted if another
        # fresh row has its key
        same = picked["_key"] == keys[np.concatenate([which for _, which in gathered])]
        parts.append(picked if bool(same.all()) else picked.filter(pl.col("_key").is_in(keys.unique().implode())))
    scanned = [kept.rows for kept, pos in found if pos is None]
    if scanned:
        every = stack(scanned)
        parts.append(every.filter(pl.col("_key").is_in(keys.unique().implode())))
    return stack(parts)


class Retained:
    """One partition's retained rows of one detector, with the key index over them.

    The rows are kept as ``segments``, each one chunk of up to SEGMENT_ROWS rows, and
    ``tail``, what was appended since: Polars gathers rows from one chunk an order of
    magnitude faster than from a frame of many (0.2 ms against 1-3 ms for 25,000 of a
    million rows), so a gather reads each segment on its own. The tail joins the last segment
    once it is 1/8 of it, or starts a new one when that one is full: a join copies one
    segment at most (a single chunk of a million rows took 35 ms to copy, a stall in the
    micro-batch that did it), and each row is copied a few times in all.
    """

    def __init__(self, empty: pl.DataFrame):
        self.empty = empty
        self.segments: list[pl.DataFrame] = []
        self.tail = empty
        self.cut = 0
        self.appended = 0
        self.saved = 0  # ``appended`` at the last snapshot
        self.index: KeyIndex | None = None  # where each key's rows are (built when needed)
        self.first_ts: int | None = None  # of the first row (None: no rows), for ``expire``

    def _parts(self) -> list[pl.DataFrame]:
        return [*self.segments, self.tail] if self.tail.height else self.segments

    @property
    def rows(self) -> pl.DataFrame:
        """Every retained row, in canonical order."""
        parts = self._parts()
        return stack(parts) if parts else self.empty

    @rows.setter
    def rows(self, rows: pl.DataFrame) -> None:
        self.segments = [_one_chunk(rows)] if rows.height else []
        self.tail = self.empty

    @property
    def height(self) -> int:
        return sum(p.height for p in self.segments) + self.tail.height

    def gather(self, positions: np.ndarray, which: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
        """The rows at ``positions`` (relative to ``cut``; each key's in order) and their
        ``which``, reordered alike: segment by segment, then the tail's, so each key's rows
        stay in order."""
        # the tail is gathered from as it is (up to 32 chunks, see ``append``): copying it into
        # one chunk first cost more than the gather it sped up
        parts = self._parts()
        if not positions.size or not parts:
            return self.empty, which
        ends = np.cumsum([p.height for p in parts])
        starts = ends - [p.height for p in parts]
        part = np.searchsorted(ends, positions, side="right")
        if part[0] == part[-1] and bool((part == part[0]).all()):
            one = int(part[0])
            return parts[one][positions - starts[one]], which
        order = np.argsort(part, kind="stable")
        picked = []
        for rows in np.split(order, np.flatnonzero(np.diff(part[order])) + 1):
            one = int(part[rows[0]])
            picked.append(parts[one][positions[rows] - starts[one]])
        return stack(picked), which[order]

    def positions(self, hashes: Callable[[], np.ndarray], rows: int, first: int,
                  index_ratio: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Where the rows of a micro-batch's keys are, relative to ``cut``, each with the number
        of a fresh row whose key hash it matched (``first`` + its place among ``hashes()``, the
        ``rows`` fresh rows' key hashes): a hash collision brings another key's rows along. None
        when the fresh rows are so many that scanning every retained row is cheaper than
        gathering through the index."""
        if rows * index_ratio > self.height:
            return None
        if self.index is None:
            self.index = KeyIndex.of(self.rows["_key"], self.cut)
        positions, which = self.index.lookup(hashes(), self.cut)
        return positions - self.cut, which + first

    def append(self, fresh: pl.DataFrame, hashes: np.ndarray | None) -> None:
        if fresh.height == 0:
            return
        if self.index is not None and not self.index.append(
                key_hashes(fresh["_key"]) if hashes is None else hashes, self.appended, self.cut):
            self.index = None  # full and unused: built again when a micro-batch needs it
        if not self.height:
            self.first_ts = fresh["_ts"][0]
        self.tail = self.tail.vstack(fresh) if self.tail.height else fresh
        self.appended += fresh.height
        last = self.segments[-1] if self.segments else None
        if last is None or self.tail.height * 8 > last.height:
            if last is not None and last.height + self.tail.height <= SEGMENT_ROWS:
                self.segments[-1] = last.vstack(self.tail).rechunk()
            else:
                self.segments.append(_one_chunk(self.tail))
            self.tail = self.empty
        elif self.tail.n_chunks() > 32:
            self.tail = self.tail.rechunk()

    def expire(self, cutoff_us: int, slack_us: int = 0) -> None:
        """Drop the rows older than ``cutoff_us`` (a prefix: the rows are in ts order).

        ``slack_us``: nothing is cut until the oldest row is that much older than the cutoff.
        Rows kept past their window change no result (evaluation looks at each row's own
        window); cutting every few micro-batches instead of every one saves its fixed cost."""
        if self.first_ts is None or self.first_ts >= cutoff_us - slack_us:
            return
        # segment by segment from the oldest: the cut is nearly always in the first (no concat
        # of every part to search them as one)
        drop = 0
        while self.segments and self.segments[0]["_ts"][-1] < cutoff_us:
            drop += self.segments.pop(0).height
        if self.segments:
            left = int(self.segments[0]["_ts"].search_sorted(cutoff_us, side="left"))
            self.segments[0] = self.segments[0].slice(left)
        else:
            left = int(self.tail["_ts"].search_sorted(cutoff_us, side="left"))
            self.rows = self.tail.slice(left)  # what is left of the tail becomes a segment
        self.cut += drop + left
        self.first_ts = self.segments[0]["_ts"][0] if self.segments else None

    def capture(self, delta: bool) -> tuple[dict[str, int], pl.DataFrame]:
        """(positions, rows): every row, or (``delta``) those appended since the last capture."""
        start = max(self.saved, self.cut) if delta else self.cut
        self.saved = self.appended
        return {"start": start, "cut": self.cut, "appended": self.appended}, self.rows.slice(start - self.cut)

    def restore(self, delta: bool, start: int, cut: int, rows: pl.DataFrame) -> None:
        if delta:
            if start != max(self.appended, cut) or cut < self.cut:
                raise ValueError("a delta checkpoint applied out of order")
            kept = self.rows.slice(cut - self.cut)  # empty when every row was cut since
            self.rows = pl.concat([kept, rows]) if kept.height else rows
        else:
            # checkpoints of earlier versions kept rows grouped by key
            self.rows = rows if rows["_ts"].is_sorted() else rows.sort(["_ts", "_seq"])
        self.cut = cut
        self.appended = self.saved = cut + self.height
        self.index = None
        self.first_ts = self.rows["_ts"][0] if self.height else None


__all__ = ["LANE_SHIFT", "Retained", "lane_base", "lanes_of", "rows_of_keys", "runs"]
