"""Detectors: the per-key state of scenarios, with an explicit lifecycle (the protocol and
the machinery every kind shares; the kinds are in ``combinations`` and ``aggregates``).

Every detector follows one small protocol (``Detector``): ``update`` with the
next rows in canonical order (returns alert candidates), ``expire`` rows that
left every window, ``snapshot``/``restore`` for checkpoints. Its state is the
relevant rows still inside a window (``retained``) and, per key, whether the
condition held at the key's last evaluation point (``prev``): SPEC's
edge trigger needs nothing else. A snapshot restored into a fresh detector
continues exactly where the original would have.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import polars as pl

from . import where as where_lang
from .errors import ScenarioError
from .events import ROW_BASE
from .held import Held
from .key_index import key_hashes
from .keys import BatchIndex, dense_codes
from .lazy import kernels
from .retained import LANE_SHIFT, Retained, lanes_of, rows_of_keys
from .scenarios import Scenario
from .snapshots import Frame, frames_from_bytes, frames_to_bytes
from .sorted_view import SortedView

MAX_EVIDENCE = 1000
# A micro-batch at most 1/INDEX_RATIO the size of a partition's retained rows reads its keys'
# rows through the key index; a larger one scans them. Measured on the stream benchmark's
# entity detectors after 1 M rows: 333 k rows, a 3,000-row micro-batch: index 0.9 ms, scan
# 2.8 ms; 10,000 rows: equal. 1 M rows, 3,000: 1.9 vs 8.8 ms; 10,000: 11.4 vs 7.5 ms
INDEX_RATIO = 100
# Retained rows are cut once the oldest is 1/EXPIRY_SLACK_RATIO of the window past it (not
# at every micro-batch): at most that share more rows are kept
EXPIRY_SLACK_RATIO = 32
# up to this many rows, relevant rows are selected eagerly (no query plan to optimize)
EAGER_ROWS = 100_000
ROW_COLUMNS = ("_key", "_ts", "_eid", "_seq")
CANDIDATE_SCHEMA = {"_scen": pl.Int64, "key": pl.String, "_ts": pl.Int64, "_seq": pl.Int64,
                    "trigger_event_id": pl.String, "value": pl.Float64,
                    "evidence": pl.List(pl.String), "_total": pl.Int64}


class Detector(Protocol):
    """The lifecycle every detector follows (one conformance test runs over all kinds)."""

    scenarios: tuple[Scenario, ...]

    def relevance(self, rows: pl.DataFrame) -> pl.Expr:
        """Which rows the detector reads (its scenarios' relevant rows)."""
        ...

    @property
    def selective(self) -> bool:
        """True when those rows are a subset a scan can filter on (not simply every row)."""
        ...

    def update(self, rows: pl.DataFrame, *, retain: bool = True,
               index: BatchIndex | None = None) -> pl.DataFrame:
        """Evaluate the next rows (canonical order); return alert candidates (CANDIDATE_SCHEMA)."""
        ...

    def unusable(self, rows: pl.DataFrame) -> list[tuple[str, pl.Expr]]:
        """Relevant rows the detector cannot evaluate (a stream dead-letters them): a mask
        for each scenario that cannot use some rows, with its id."""
        ...

    def expire(self, watermark_us: int) -> None: ...

    def capture(self, delta: bool = False) -> list[Frame]:
        """The state as frames, to serialize later (``delta``: only what changed since the
        last capture, for ``restore`` on top of it). Cheap: frames are not copied."""
        ...

    def snapshot(self, delta: bool = False) -> bytes:
        """``capture`` serialized."""
        ...

    def restore(self, data: bytes) -> None:
        """Take a full snapshot, or apply a delta snapshot to the state it was taken after."""
        ...

    def state_rows(self) -> int: ...


_NO_CANDIDATES = pl.DataFrame(schema=CANDIDATE_SCHEMA)


def empty_candidates() -> pl.DataFrame:
    return _NO_CANDIDATES  # built once: most micro-batches of most detectors have none


class WindowedDetector:
    """Shared machinery: relevance, retained rows, key grouping, snapshots."""

    value_dtype: pl.DataType = pl.Float64

    def __init__(self, scenarios: tuple[Scenario, ...]):
        self.scenarios = scenarios
        first = scenarios[0]
        self.key = first.key
        self.where_tree = first.where_tree
        self.window_us = max(s.window_us for s in scenarios)
        # per partition (SPEC: each has its own watermark, so its own expiry); a batch run and
        # a single stream have one, partition 0
        self.lanes: dict[int, Retained] = {}
        self.held = Held()  # of every partition: keys are theirs alone
        self._keep_state = True  # False during a batch run's update: no evaluation follows
        self._group_lanes: np.ndarray | int = 0  # the partition of each group being evaluated
        self._had: np.ndarray | None = None  # which of those groups held something before
        self._signature: str | None = None
        self._selections: dict[tuple, tuple[pl.Expr, list[pl.Expr]]] = {}

    # --- relevance -------------------------------------------------------
    def _empty_rows(self) -> pl.DataFrame:
        return pl.DataFrame(schema={"_key": pl.String, "_ts": pl.Int64, "_eid": pl.String,
                                    "_seq": pl.Int64, **self.value_schema()})

    def value_schema(self) -> dict[str, pl.DataType]:
        """The columns of values a retained row carries beside ROW_COLUMNS."""
        return {"_val": self.value_dtype}

    def value_columns(self, rows: pl.DataFrame) -> dict[str, pl.Expr]:
        """Those columns, from the events."""
        return {"_val": self.value_expr(rows)}

    def _lane(self, number: int) -> Retained:
        """A partition's retained rows (none yet: an empty set of them)."""
        kept = self.lanes.get(number)
        if kept is None:
            kept = self.lanes[number] = Retained(self._empty_rows())
        return kept

    @property
    def prev(self) -> pl.DataFrame:
        """Every partition's (key, scenario) pairs whose condition held at the key's last
        evaluation, as a table."""
        return self.held.frame()

    @property
    def retained(self) -> pl.DataFrame:
        """Every partition's retained rows (partition by partition)."""
        frames = [self.lanes[k].rows for k in sorted(self.lanes)]
        return pl.concat(frames) if len(frames) > 1 else frames[0] if frames else self._empty_rows()

    def _fail(self, field: str, message: str, scenario: Scenario | None = None) -> ScenarioError:
        return ScenarioError(message, scenario=(scenario or self.scenarios[0]).id, field=field)

    def relevance(self, rows: pl.DataFrame) -> pl.Expr:
        if self.key not in rows.columns:
            raise self._fail("key", f"the events have no column '{self.key}'")
        expr = pl.col(self.key).is_not_null()
        if self.where_tree is not None:
            try:
                expr = expr & where_lang.to_polars(self.where_tree, rows.schema)
            except where_lang.WhereTypeError as exc:
                raise self._fail("where", str(exc)) from None
        return expr

    def value_expr(self, rows: pl.DataFrame) -> pl.Expr:
        return pl.lit(None, dtype=self.value_dtype)

    @property
    def selective(self) -> bool:
        """True when the detector reads a subset of rows that a scan can filter on."""
        return self.where_tree is not None

    def check_values(self, relevant: pl.DataFrame) -> None:
        """Raise InputError for a relevant row whose value the metric cannot use."""

    def unusable(self, rows: pl.DataFrame) -> list[tuple[str, pl.Expr]]:
        """Relevant rows whose value a metric cannot use: (scenario id, mask) pairs (none: every
        row is usable)."""
        return []

    def select_relevant(self, rows: pl.DataFrame, with_index: bool = False) -> pl.DataFrame:
        mask, columns = self._selection(rows, with_index)
        frame = rows.with_row_index("_i") if with_index else rows
        if rows.height > EAGER_ROWS:  # filtered before its columns are computed (memory)
            relevant = frame.lazy().filter(mask).select(columns).collect()
        else:  # a micro-batch of a few thousand rows pays a lazy query's planning more than the work
            relevant = frame.select(*columns, mask.alias("_relevant")).filter(pl.col("_relevant"))
        self.check_values(relevant)
        return relevant.select(ROW_COLUMNS + tuple(self.value_schema()) + (("_i",) if with_index else ()))

    def _selection(self, rows: pl.DataFrame, with_index: bool) -> tuple[pl.Expr, list[pl.Expr]]:
        """The relevance mask and the columns to select, built once per schema (a stream's
        micro-batches share one; compiling a ``where`` anew cost a fifth of selecting)."""
        schema = (tuple(rows.schema.items()), with_index)
        made = self._selections.get(schema)
        if made is None:
            mask = self.relevance(rows)
            keep = [c for c in ("_file", "_row", ROW_BASE) if c in rows.columns]
            key, ts = self._key_and_ts(rows.schema)
            columns = [
                key.alias("_key"),
                ts.alias("_ts"),
                pl.col("event_id").alias("_eid"),
                pl.col("_seq"),
                *[expr.alias(name) for name, expr in self.value_columns(rows).items()],
                *[pl.col(c) for c in keep],
                *([pl.col("_i")] if with_index else []),
            ]
            made = self._selections[schema] = (mask, columns)
        return made

    def _key_and_ts(self, schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
        """The key as text and ``ts`` as epoch microseconds, as retained rows and alert
        candidates carry them (``_key``, ``_ts``)."""
        key = pl.col(self.key) if schema[self.key] == pl.String else pl.col(self.key).cast(pl.String)
        ts = pl.col("ts") if schema["ts"] == pl.Int64 else pl.col("ts").dt.epoch("us")
        return key, ts

    # --- lifecycle -------------------------------------------------------
    def update(self, rows: pl.DataFrame, *, retain: bool = True, index: BatchIndex | None = None) -> pl.DataFrame:
        """Evaluate the next rows. ``retain=False``: no rows follow (a batch run), keep no window.

        ``rows`` may hold several partitions' rows (each in canonical order; see ``retained``).
        ``index``: codes and orders of ``rows``' columns shared by the detectors of one batch;
        used when this detector carries no rows from earlier batches.
        """
        n_old = sum(r.height for r in self.lanes.values())
        shared = index is not None and n_old == 0
        fresh = self.select_relevant(rows, with_index=shared)
        if fresh.height == 0:
            return empty_candidates()
        runs, order_by_lane = lanes_of(fresh["_seq"].to_numpy())
        if order_by_lane is not None:  # each partition's rows one run (per key, the order stays)
            fresh = fresh[order_by_lane]
        hashes: list[np.ndarray] = []  # of the fresh rows' keys, when computed

        def fresh_hashes() -> np.ndarray:
            if not hashes:
                hashes.append(key_hashes(fresh["_key"]))
            return hashes[0]

        view: SortedView
        if shared:
            idx = fresh["_i"].to_numpy()  # in run order (a batch run has one partition)
            fresh = fresh.drop("_i")
            # a small subset is cheaper to group on its own than through the whole column
            shared = fresh.height * 4 >= rows.height
        n_old = 0
        if shared:
            column = index.column(self.key)  # type: ignore[union-attr]
            order, group_start = column.subset_groups(idx)
            chunk = fresh
            view = SortedView(chunk, order, index=index, idx=idx, key=self.key)
        else:
            # only keys with fresh rows are evaluated: the others' windows and prev stand as they
            # are. Each partition's rows of these keys, found through its key index (or all of
            # them, to scan), are gathered and filtered in one go over every partition
            found: list[tuple[pl.DataFrame, np.ndarray | None]] = []
            for lane, start, stop in runs:
                kept = self.lanes.get(lane)
                if kept is not None and kept.height:
                    found.append((kept, kept.positions(lambda a=start, b=stop: fresh_hashes()[a:b],
                                                            stop - start, start, INDEX_RATIO)))
            old = rows_of_keys(found, fresh["_key"]) if found else None
            n_old = old.height if old is not None else 0
            chunk = old.vstack(fresh) if n_old else fresh
            dense, n_keys = dense_codes(chunk["_key"])
            order, group_start = kernels.group_by_code(dense, n_keys)
            view = SortedView(chunk, order)
        is_new = np.zeros(chunk.height, np.bool_)
        is_new[n_old:] = True
        last_rows = order[group_start[1:] - 1]  # a group's last row is fresh (its ts is the latest)
        group_keys = chunk["_key"][last_rows]
        if len(runs) == 1:
            self._group_lanes = runs[0][0]
        else:
            self._group_lanes = fresh["_seq"].to_numpy()[last_rows - n_old] >> LANE_SHIFT
        self._keep_state = retain
        cands = self.evaluate(view, group_start, is_new[order] if n_old else np.ones(chunk.height, np.bool_),
                              group_keys)
        if retain:
            # Retained rows stay in canonical order per partition (rows come in that order, and a
            # later micro-batch starts above this one's watermark): appending keeps it, and
            # ``expire`` cuts a prefix. Nothing proportional to the state is read or copied
            # per micro-batch.
            for lane, start, stop in runs:
                self._lane(lane).append(fresh.slice(start, stop - start), fresh_hashes()[start:stop] if hashes else None)
        return cands

    def expire(self, watermark_us: int, lane: int | None = None) -> None:
        """Drop rows no future evaluation (at or after the watermark) can see (of one partition,
        or of every one)."""
        for number, kept in self.lanes.items():
            if lane is None or number == lane:
                kept.expire(watermark_us - self.window_us, self.window_us // EXPIRY_SLACK_RATIO)

    def state_rows(self) -> int:
        return sum(r.height for r in self.lanes.values()) + self.held.pairs_count

    def snapshot(self, delta: bool = False, lane: int = 0) -> bytes:
        return frames_to_bytes(self.capture(delta, lane))

    def capture(self, delta: bool = False, lane: int = 0) -> list[Frame]:
        """One partition's state (``delta``: what changed since its last capture)."""
        positions, rows = self._lane(lane).capture(delta)
        meta = pl.DataFrame({"signature": [self.signature()], "delta": [delta], **{k: [v] for k, v in positions.items()}},
                            schema={"signature": pl.String, "delta": pl.Boolean, "start": pl.Int64,
                                    "cut": pl.Int64, "appended": pl.Int64})
        return [meta, rows, self.held.capture(lane)]

    def restore(self, data: bytes, lane: int = 0) -> None:
        """Take one partition's full snapshot, or apply its delta on top of the state restored before."""
        meta, rows, prev = frames_from_bytes(data)
        if meta["signature"][0] != self.signature():
            raise ScenarioError("the checkpoint was written for other scenarios (or other versions "
                                "of them); it cannot be restored into these", scenario=self.scenarios[0].id)
        kept = self._lane(lane)
        if "delta" in meta.columns and meta["delta"][0]:
            kept.restore(True, int(meta["start"][0]), int(meta["cut"][0]), rows)
        else:
            kept.restore(False, 0, int(meta["cut"][0]) if "cut" in meta.columns else 0, rows)
        # checkpoints of earlier versions have no ``_lane``
        self.held.load(prev, lane)

    def signature(self) -> str:
        if self._signature is None:  # scenarios never change: once
            self._signature = "|".join(
                f"{s.id}:{s.version}:{s.kind}:{s.window_us}:{s.key}:{s.where}:{s.items}:"
                f"{s.min_distinct}:{s.metric}:{s.op}:{s.threshold}" for s in self.scenarios)
        return self._signature

    def evaluate(self, view: SortedView, group_start: np.ndarray, new_sorted: np.ndarray,
                 group_keys: pl.Series) -> pl.DataFrame:
        raise NotImplementedError

    def _prev_pairs(self, group_keys: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """CSR (ptr, combos) of scenarios whose condition held at each group's last evaluation."""
        ptr, combos = self.held.pairs(group_keys, self._group_lanes)
        self._had = ptr[1:] > ptr[:-1]  # the groups with something to replace
        return ptr, combos

    def _set_prev(self, group_keys: pl.Series, groups: np.ndarray, combos: np.ndarray,
                  decided: np.ndarray) -> None:
        """Replace prev for the groups in ``decided`` by the (group, combo) pairs given."""
        if self._keep_state:  # a batch run keeps nothing: no evaluation follows
            drop = decided[self._had[decided]] if self._had is not None else decided
            self.held.replace(group_keys, self._group_lanes, drop, groups, combos)

    def _candidates(self, chunk: pl.DataFrame, order: np.ndarray | None, rows: np.ndarray,
                    scen: np.ndarray, values: np.ndarray, ev_ptr: np.ndarray, ev_rows: np.ndarray,
                    totals: np.ndarray) -> pl.DataFrame:
        """Alert candidates; evidence arrives flat (rows in sorted order, one offset per alert).
        ``order``: the chunk's row at each sorted position (None: positions are chunk rows)."""
        if rows.size == 0:  # most micro-batches of most detectors: no table to build
            return empty_candidates()
        picked = order[rows] if order is not None else rows
        sub = chunk.select("_key", "_ts", "_eid", "_seq")[picked]
        lengths = np.diff(ev_ptr)
        evidence = pl.DataFrame({
            "_a": np.repeat(np.arange(rows.size, dtype=np.int64), lengths),
            "_e": chunk["_eid"][order[ev_rows] if order is not None else ev_rows],
        }).group_by("_a", maintain_order=True).agg("_e")
        if evidence.height != rows.size:  # every alert's evidence holds at least its trigger row
            raise AssertionError("alert without evidence")
        return pl.DataFrame({
            "_scen": scen.astype(np.int64),
            "key": sub["_key"],
            "_ts": sub["_ts"],
            "_seq": sub["_seq"],
            "trigger_event_id": sub["_eid"],
            "value": values.astype(np.float64),
            "evidence": evidence["_e"],
            "_total": totals.astype(np.int64),
        }, schema=CANDIDATE_SCHEMA)
