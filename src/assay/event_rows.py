"""How many rows each event_id has had in a stream, for the trigger row's position (SPEC)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .lazy import LazyModule
from .snapshots import Deferred, resolve

kernels = LazyModule("assay.event_rows_kernels")

EVENT_ROWS_SCHEMA = {"_eid": pl.String, "_n": pl.Int64, "_last": pl.Int64}
DELTA_SCHEMA = {**EVENT_ROWS_SCHEMA, "_step": pl.Int32, "_cutoff": pl.Int64}
EARLIER_SCHEMA = {"_eid": pl.String, "_n": pl.Int64}
NONE_EARLIER = pl.DataFrame(schema=EARLIER_SCHEMA)  # what ``add`` returns when no id was seen before
# the last-row time of an entry that a later run holds anew: below every cutoff
DEAD = np.iinfo(np.int64).min
NO_CUTOFF = DEAD + 1
# Runs merge up to this many entries, no further: merging two runs of a million ids held a
# micro-batch up for 0.1-0.2 s (at p99 latency, a stall that long counts). Bigger states keep
# more runs (a lookup searches each: ~0.1 ms per run for a micro-batch's ids), and a run
# goes when its newest id is forgotten
MAX_MERGED = 1 << 18


@dataclass
class _Run:
    """Ids with their rows and last-row time, sorted by a hash of the id (in memory only)."""

    hashes: np.ndarray
    ids: pl.Series
    n: np.ndarray
    last: np.ndarray
    newest: int
    bloom: np.ndarray  # ``kernels.bloom_of(hashes)``


def _full(runs: list[_Run], cutoff: int) -> pl.DataFrame:
    """Every live entry of ``runs``, in a fixed order (equal states give equal frames)."""
    parts = []
    for run in runs:
        live = run.last >= cutoff
        parts.append(pl.DataFrame({"_eid": run.ids.filter(pl.Series(live)), "_n": run.n[live],
                                   "_last": run.last[live]}, schema=EVENT_ROWS_SCHEMA))
    return pl.concat(parts).sort("_last", "_eid") if parts else pl.DataFrame(schema=EVENT_ROWS_SCHEMA)


def _delta(log: list[pl.DataFrame | int]) -> pl.DataFrame:
    """The logged micro-batches' counts and cutoffs, in order (``_step``)."""
    steps = [(entry.with_columns(pl.lit(None, pl.Int64).alias("_cutoff")) if isinstance(entry, pl.DataFrame)
              else pl.DataFrame({"_eid": [None], "_n": [None], "_last": [None], "_cutoff": [entry]},
                                schema={**EVENT_ROWS_SCHEMA, "_cutoff": pl.Int64})).with_columns(
        pl.lit(i, pl.Int32).alias("_step")) for i, entry in enumerate(log)]
    return pl.concat(steps).select(list(DELTA_SCHEMA)) if steps else pl.DataFrame(schema=DELTA_SCHEMA)


def _hash(ids: pl.Series) -> np.ndarray:
    return ids.hash(seed=0).to_numpy()


class EventRows:
    """How many rows each event_id has had, and the ts of its last row, in a stream.

    Runs of NumPy arrays and Arrow strings sorted by a hash of the id, as in an LSM tree: a
    micro-batch adds one run (its ids, with the rows their live entries had before added
    in; those entries are marked dead), runs of similar size merge (up to MAX_MERGED), a lookup searches each
    run by hash and compares the ids themselves (exact: two ids sharing a hash stay apart).
    Ids whose last row is before ``cutoff`` are forgotten: lookups skip them and the next
    merge drops them. About 40 bytes per id and no Python object per id: the dict of str
    it replaces held ~120 bytes and cost Python work per id at every micro-batch.
    """

    def __init__(self) -> None:
        self.runs: list[_Run] = []
        self.cutoff = NO_CUTOFF
        # since the last capture, once captures are taken: the micro-batches' counts and the
        # cutoffs set, in order, for a delta
        self.tracking = False
        self.log: list[pl.DataFrame | int] = []

    def add(self, counts: pl.DataFrame) -> pl.DataFrame:
        """``counts``: one row per event_id of a micro-batch: ``event_id, _n, _last``. Returns
        the rows those of its ids seen before had until now (``counts`` of them, as it was)."""
        if counts.height == 0:
            return NONE_EARLIER
        if self.tracking:
            self.log.append(counts.select(pl.col("event_id").alias("_eid"), "_n", "_last"))
        return self._add(counts["event_id"], counts["_n"].to_numpy().astype(np.int64),
                         counts["_last"].to_numpy().astype(np.int64))

    def expire(self, cutoff_us: int) -> None:
        """Forget the ids whose last row is older than ``cutoff_us``."""
        if cutoff_us <= self.cutoff:
            return
        self.cutoff = cutoff_us
        self.runs = [run for run in self.runs if run.newest >= cutoff_us]
        if self.tracking:
            self.log.append(cutoff_us)

    def counts(self, ids: pl.Series | list[str]) -> pl.DataFrame:
        """Rows so far of those of ``ids`` that are known."""
        series = ids if isinstance(ids, pl.Series) else pl.Series(ids, dtype=pl.String)
        hashes = _hash(series)
        order = np.argsort(hashes, kind="stable")  # lookups take hashes in ascending order
        series, hashes = series[order], hashes[order]
        n = np.zeros(series.len(), np.int64)
        found = np.zeros(series.len(), np.bool_)
        for run, pos in self._live(series, hashes):
            hit = pos >= 0
            n[hit] = run.n[pos[hit]]
            found |= hit
        return pl.DataFrame({"_eid": series.filter(pl.Series(found)), "_n": n[found]},
                            schema={"_eid": pl.String, "_n": pl.Int64})

    def items(self) -> dict[str, tuple[int, int]]:
        """Every known id's (rows, last ts)."""
        return {eid: (n, last) for eid, n, last in self._full().iter_rows()}

    def frame(self, delta: bool = False) -> pl.DataFrame:
        """Every known id's (rows, last ts). ``delta``: what happened since the last frame, in
        order (``_step``): the micro-batches' counts, and the cutoffs set (``_cutoff``)."""
        return resolve(self.capture(delta))

    def capture(self, delta: bool = False) -> Deferred:
        """``frame``, built later from what it is made of now (the logged micro-batches, or a
        copy of the runs): building it (a million ids: a quarter of a second to sort) can then
        leave the engine's thread."""
        if delta:
            log = self.log
            out = Deferred(lambda: _delta(log), sum(e.estimated_size() for e in log if isinstance(e, pl.DataFrame)))
        else:
            # ids, counts and hashes of a run never change; its last-row times do (an id seen
            # again is marked dead), and the list of runs does
            runs = [_Run(r.hashes, r.ids, r.n, r.last.copy(), r.newest, r.bloom) for r in self.runs]
            cutoff = self.cutoff
            out = Deferred(lambda: _full(runs, cutoff), sum(r.hashes.size for r in runs) * 40)
        self.tracking = True
        self.log = []
        return out

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> EventRows:
        out = cls()
        if frame.height:
            out._add(frame["_eid"], frame["_n"].to_numpy().astype(np.int64),
                     frame["_last"].to_numpy().astype(np.int64))
        out.tracking = True
        return out

    def apply(self, delta: pl.DataFrame) -> None:
        """Replay a ``frame(delta=True)`` taken after the state this one was restored from.

        Deltas of earlier versions name forgotten ids (``_n`` empty) instead of cutoffs."""
        tracking, self.tracking = self.tracking, False
        try:
            for step in delta.partition_by("_step", maintain_order=True) if delta.height else []:
                if "_cutoff" in step.columns and step["_cutoff"][0] is not None:
                    self.expire(int(step["_cutoff"][0]))
                elif step["_n"].null_count():
                    self._forget(step["_eid"])
                else:
                    self._add(step["_eid"], step["_n"].to_numpy().astype(np.int64),
                              step["_last"].to_numpy().astype(np.int64))
        finally:
            self.tracking = tracking

    def __len__(self) -> int:
        return int(sum(int((run.last >= self.cutoff).sum()) for run in self.runs))

    def __bool__(self) -> bool:
        return bool(self.runs)

    # --- internals -----------------------------------------------------------
    def _full(self) -> pl.DataFrame:
        return _full(self.runs, self.cutoff)

    def _add(self, ids: pl.Series, n: np.ndarray, last: np.ndarray) -> pl.DataFrame:
        hashes = _hash(ids)
        order = np.argsort(hashes, kind="stable")
        # ``series[array]`` gathers directly; ``Series.gather`` builds and runs an expression
        # (26 against 82 us for a few hundred ids, several times a partition and micro-batch)
        hashes, ids, n, last = hashes[order], ids[order].rechunk(), n[order], last[order]
        before = np.zeros(n.size, np.int64)
        for run, pos in self._live(ids, hashes):  # ids seen before: few
            hit = pos >= 0
            if hit.any():
                before[hit] += run.n[pos[hit]]
                last[hit] = np.maximum(last[hit], run.last[pos[hit]])
                run.last[pos[hit]] = DEAD
        seen = np.flatnonzero(before)
        earlier = pl.DataFrame({"_eid": ids[seen], "_n": before[seen]}, schema=EARLIER_SCHEMA) \
            if seen.size else NONE_EARLIER
        self.runs.append(_Run(hashes, ids, n + before, last, int(last.max()), kernels.bloom_of(hashes)))
        while len(self.runs) > 1 and self.runs[-2].ids.len() <= 2 * self.runs[-1].ids.len() \
                and self.runs[-2].ids.len() + self.runs[-1].ids.len() <= MAX_MERGED:
            b, a = self.runs.pop(), self.runs.pop()
            self.runs.append(self._merge(a, b))
        return earlier

    def _merge(self, a: _Run, b: _Run) -> _Run:
        order = kernels.merge_order(a.hashes, a.last, b.hashes, b.last, self.cutoff)
        last = np.concatenate([a.last, b.last])[order]
        hashes = np.concatenate([a.hashes, b.hashes])[order]
        return _Run(hashes, pl.concat([a.ids, b.ids])[order].rechunk(), np.concatenate([a.n, b.n])[order],
                    last, int(last.max()) if last.size else DEAD, kernels.bloom_of(hashes))

    def _live(self, ids: pl.Series, hashes: np.ndarray) -> list[tuple[_Run, np.ndarray]]:
        """For each run, the position in it of each id's live entry, or -1 (``hashes``: of
        ``ids``, ascending)."""
        out = []
        for run in self.runs:
            pos, shared = kernels.find(run.hashes, run.last, hashes, self.cutoff, run.bloom)
            hit = np.flatnonzero(pos >= 0)
            if hit.size:
                other = ~(run.ids[pos[hit]] == ids[hit]).to_numpy()
                # a hash shared by two ids: compare the ids of every live entry with that hash
                for k in np.concatenate([hit[other], np.flatnonzero(shared)]).tolist():
                    lo, hi = np.searchsorted(run.hashes, hashes[k:k + 1], "left")[0], \
                        np.searchsorted(run.hashes, hashes[k:k + 1], "right")[0]
                    same = [i for i in range(lo, hi) if run.last[i] >= self.cutoff and run.ids[i] == ids[k]]
                    pos[k] = same[0] if same else -1
            out.append((run, pos))
        return out

    def _forget(self, ids: pl.Series) -> None:
        hashes = _hash(ids)
        order = np.argsort(hashes, kind="stable")
        for run, pos in self._live(ids[order], hashes[order]):
            run.last[pos[pos >= 0]] = DEAD
