"""Which scenarios' conditions held at each key's last evaluation point (SPEC's edge trigger).

Per partition, a dict from key to the scenarios (numbers within a detector) that held. A
micro-batch reads and replaces the entries of its few thousand keys and touches nothing
else: as a table, every micro-batch joined and filtered all of it (11 ms of a 62 ms push of
2,500 rows on the stream benchmark's entity scenarios, at a few thousand entries).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .snapshots import Deferred

SCHEMA = {"_key": pl.String, "_combo": pl.Int64, "_lane": pl.Int64}
_NONE = np.zeros(0, np.int64)


def _frame(lanes: dict[int, dict[str, np.ndarray]]) -> pl.DataFrame:
    keys: list[str] = []
    sizes: list[int] = []
    parts: list[np.ndarray] = []
    numbers: list[int] = []
    for number, held in lanes.items():
        for k, v in held.items():
            keys.append(k)
            sizes.append(v.size)
            parts.append(v)
            numbers.append(number)
    if not keys:
        return pl.DataFrame(schema=SCHEMA)
    size = np.asarray(sizes)
    return pl.DataFrame({
        "_key": pl.Series(keys, dtype=pl.String).gather(np.repeat(np.arange(len(keys)), size)),
        "_combo": np.concatenate(parts),
        "_lane": np.repeat(np.asarray(numbers, np.int64), size),
    }, schema=SCHEMA).sort("_lane", "_key", "_combo")


class Held:
    def __init__(self) -> None:
        self._lanes: dict[int, dict[str, np.ndarray]] = {}
        self.pairs_count = 0

    def pairs(self, group_keys: pl.Series, lanes: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """CSR (ptr, scenarios) of what held for each key (``lanes``: each key's partition,
        or one for all)."""
        ptr = np.zeros(group_keys.len() + 1, np.int64)
        if not self.pairs_count:
            return ptr, _NONE
        keys = group_keys.to_list()
        if isinstance(lanes, int):
            get = self._lanes.get(lanes, {}).get
            hits = [(g, v) for g, k in enumerate(keys) if (v := get(k)) is not None]
        else:  # partition by partition: one dict each
            hits = []
            for lane in np.unique(lanes).tolist():
                held = self._lanes.get(lane)
                if held:
                    get = held.get
                    hits += [(g, v) for g in np.flatnonzero(lanes == lane).tolist() if (v := get(keys[g])) is not None]
            hits.sort(key=lambda hit: hit[0])
        if not hits:
            return ptr, _NONE
        counts = np.zeros(len(keys), np.int64)
        counts[[g for g, _ in hits]] = [v.size for _, v in hits]
        np.cumsum(counts, out=ptr[1:])
        return ptr, np.concatenate([v for _, v in hits])

    def replace(self, group_keys: pl.Series, lanes: np.ndarray | int, decided: np.ndarray, groups: np.ndarray,
                scenarios: np.ndarray) -> None:
        """The keys ``decided`` now hold exactly the (group, scenario) pairs given.

        ``decided`` need only name the keys that held something before (``pairs`` told)."""
        keys = group_keys.to_list()
        if isinstance(lanes, int):
            lane_of = (lambda g: lanes)  # noqa: E731
            held = self._lanes.get(lanes)
            if held:
                pop = held.pop
                gone = [v.size for k in map(keys.__getitem__, decided.tolist()) if (v := pop(k, None)) is not None]
                self.pairs_count -= sum(gone)
        else:
            lane_of = (lambda g: int(lanes[g]))  # noqa: E731
            for g in decided.tolist():
                held = self._lanes.get(lane_of(g))
                old = held.pop(keys[g], None) if held else None
                if old is not None:
                    self.pairs_count -= old.size
        if not groups.size:
            return
        order = np.argsort(groups, kind="stable")
        groups, scenarios = groups[order], scenarios.astype(np.int64)[order]
        starts = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
        for g, part in zip(groups[starts].tolist(), np.split(scenarios, starts[1:]), strict=True):
            self._lanes.setdefault(lane_of(g), {})[keys[g]] = part
        self.pairs_count += scenarios.size

    def frame(self, lane: int | None = None) -> pl.DataFrame:
        """One partition's pairs (or every one's) as a table, in a fixed order."""
        return _frame(self._copy(lane))

    def capture(self, lane: int) -> Deferred:
        """``frame(lane)``, built later from a copy of the partition's dict taken now (a
        micro-batch replaces a key's array, never changes it): the loop over every key
        leaves the engine's thread."""
        copy = self._copy(lane)
        return Deferred(lambda: _frame(copy), 48 * sum(len(held) for held in copy.values()))

    def _copy(self, lane: int | None) -> dict[int, dict[str, np.ndarray]]:
        return {number: dict(held) for number, held in self._lanes.items() if lane is None or number == lane}

    def load(self, frame: pl.DataFrame, lane: int) -> None:
        """Replace one partition's pairs by those of ``frame`` (as ``frame`` gave them)."""
        old = self._lanes.pop(lane, {})
        self.pairs_count -= sum(v.size for v in old.values())
        if not frame.height:
            return
        grouped = frame.group_by("_key", maintain_order=True).agg(pl.col("_combo"))
        self._lanes[lane] = {k: np.asarray(v, np.int64) for k, v in
                             zip(grouped["_key"].to_list(), grouped["_combo"].to_list(), strict=True)}
        self.pairs_count += frame.height
