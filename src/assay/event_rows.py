"""How many rows each event_id has had in a stream, for the trigger row's position (SPEC)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import polars as pl

EVENT_ROWS_SCHEMA = {"_eid": pl.String, "_n": pl.Int64, "_last": pl.Int64}


_N_BITS = 32  # a value is (last ts << _N_BITS) | rows
_N_MASK = (1 << _N_BITS) - 1


def _pack(n: int, last: int) -> int:
    return (last << _N_BITS) | n


class EventRows:
    """How many rows each event_id has had, and the ts of its last row, in a stream.

    A dict from id to (rows, last ts), changed with each micro-batch's ids in bulk, and
    the micro-batches' (last ts, id) lists sorted by ts for expiry. Micro-batches come in
    canonical order (each starts above the previous watermark), so those lists are in ts
    order one after the other and expiry reads only what expires. Nothing here costs
    what the stream remembers, only what a micro-batch brings.

    The dict holds a stream's millions of ids, so it holds nothing Python's cycle collector
    looks into: str keys and int values (rows and last ts packed in one int; a dict of
    atomic objects is not tracked), and the expiry lists are Arrow-backed Series. With a
    (rows, ts) tuple per id, each full collection walked every id and paused the worker
    for 100-180 ms.
    """

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}  # id -> _pack(rows, last ts)
        self.batches: deque[list] = deque()  # [lasts (ascending, NumPy), ids (Series), first unread]
        # since the last snapshot, once snapshots are taken: what was added and forgotten, in
        # order (the micro-batches' count frames, Series of forgotten ids), for a delta
        self.tracking = False
        self.stale = False  # after ``apply``: the expiry lists are rebuilt before they are used
        self.log: list[pl.DataFrame | pl.Series] = []

    def add(self, counts: pl.DataFrame, in_order: bool = False) -> None:
        """``counts``: one row per event_id of a micro-batch: ``event_id, _n, _last`` (``in_order``:
        sorted by ``_last`` already)."""
        if counts.height == 0:
            return
        if self.stale:
            self._rebuild()
        if not in_order:
            counts = counts.sort("_last")
        if self.tracking:
            self.log.append(counts.select("event_id", "_n", "_last"))
        ids = counts["event_id"]
        lasts = counts["_last"].to_numpy()
        packed = (lasts.astype(object) << _N_BITS) | counts["_n"].to_numpy().astype(object)
        batch = dict(zip(ids.to_list(), packed.tolist(), strict=True))
        rows = self.rows
        for eid in rows.keys() & batch.keys():  # ids seen before: few
            new, old = batch[eid], rows[eid]
            batch[eid] = _pack((old & _N_MASK) + (new & _N_MASK), max(old >> _N_BITS, new >> _N_BITS))
        rows.update(batch)
        self.batches.append([lasts, ids, 0])

    def expire(self, cutoff_us: int) -> None:
        """Forget the ids whose last row is older than ``cutoff_us``."""
        if self.stale:
            self._rebuild()
        rows = self.rows
        gone: list[str] = []
        while self.batches:
            entry = self.batches[0]
            lasts, ids, start = entry
            stop = int(np.searchsorted(lasts, cutoff_us, side="left"))
            if stop > start:
                for eid, last in zip(ids.slice(start, stop - start).to_list(), lasts[start:stop].tolist(),
                                     strict=True):
                    seen = rows.get(eid)
                    if seen is not None and seen >> _N_BITS == last:  # else a later row moved it on
                        del rows[eid]
                        gone.append(eid)
            if stop < len(ids):
                entry[2] = stop
                break
            self.batches.popleft()
        if self.tracking and gone:
            self.log.append(pl.Series("_eid", gone, dtype=pl.String))

    def items(self) -> dict[str, tuple[int, int]]:
        """Every id's (rows, last ts)."""
        return {eid: (v & _N_MASK, v >> _N_BITS) for eid, v in self.rows.items()}

    def counts(self, ids: list[str]) -> pl.DataFrame:
        known = [(eid, self.rows[eid] & _N_MASK) for eid in ids if eid in self.rows]
        return pl.DataFrame({"_eid": [k[0] for k in known], "_n": [k[1] for k in known]},
                            schema={"_eid": pl.String, "_n": pl.Int64})

    def frame(self, delta: bool = False) -> pl.DataFrame:
        """Every id's (rows, last ts). ``delta``: what happened since the last frame, in order
        (``_step``): the micro-batches' counts, and ids forgotten (``_n`` null)."""
        out = self.capture(delta)
        return out if isinstance(out, pl.DataFrame) else out()

    def capture(self, delta: bool = False) -> pl.DataFrame | Callable[[], pl.DataFrame]:
        """``frame``, except that the whole state comes as a function that builds it from a
        copy of the dict: building the frame (Python, per id) can then leave the engine's thread."""
        if delta:
            steps = []
            for i, entry in enumerate(self.log):
                step = entry.rename({"event_id": "_eid"}) if isinstance(entry, pl.DataFrame) else \
                    entry.to_frame("_eid").with_columns(
                        pl.lit(None, pl.Int64).alias("_n"), pl.lit(None, pl.Int64).alias("_last"))
                steps.append(step.with_columns(pl.lit(i, pl.Int32).alias("_step")))
            out: pl.DataFrame | Callable[[], pl.DataFrame] = pl.concat(steps) if steps else \
                pl.DataFrame(schema={**EVENT_ROWS_SCHEMA, "_step": pl.Int32})
        else:
            rows = dict(self.rows)

            def out() -> pl.DataFrame:
                packed = list(rows.values())  # Python ints: a ts in µs and a count need more than 64 bits
                return pl.DataFrame({"_eid": list(rows), "_n": [v & _N_MASK for v in packed],
                                     "_last": [v >> _N_BITS for v in packed]}, schema=EVENT_ROWS_SCHEMA)
        self.tracking = True
        self.log = []
        return out

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> EventRows:
        out = cls()
        out.add(frame.rename({"_eid": "event_id"}).select("event_id", "_n", "_last"))
        out.tracking = True
        return out

    def apply(self, delta: pl.DataFrame) -> None:
        """Replay a ``frame(delta=True)`` taken after the state this one was restored from."""
        rows = self.rows
        for eid, n, last in delta.select("_eid", "_n", "_last").iter_rows():
            if n is None:
                if rows.pop(eid, None) is None:
                    raise ValueError("a delta checkpoint applied out of order (it forgets an unknown event id)")
            else:
                old = rows.get(eid)
                rows[eid] = _pack(n, last) if old is None else \
                    _pack((old & _N_MASK) + n, max(old >> _N_BITS, last))
        self.stale = True

    def _rebuild(self) -> None:
        """The expiry lists anew, as one list of the whole dict (expiry reads only (last, id))."""
        self.stale = False
        ids = pl.Series("event_id", list(self.rows), dtype=pl.String)
        lasts = np.array([v >> _N_BITS for v in self.rows.values()], dtype=np.int64)
        order = np.argsort(lasts, kind="stable")
        self.batches = deque([[lasts[order], ids.gather(order), 0]])

    def __len__(self) -> int:
        return len(self.rows)
