"""Aggregate scenarios (count, sum, mean, min, max, distinct over a window), as packs sharing
key and ``where``.

Scenarios that read the same rows (same key, same ``where``) share one detector: one set of
retained rows, one lookup of a micro-batch's keys, one grouping, one ``prev``; only the
kernel runs once per scenario. A stream's pack of aggregates over the same customers costs
little more than one of them. Each metric column is kept once (``_val``, ``_val1``, ...):
distinct values as text, the others as numbers.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import polars as pl

from .errors import InputError
from .events import row_number
from .lazy import kernels
from .scenarios import Scenario
from .sorted_view import SortedView
from .windowed import MAX_EVIDENCE, WindowedDetector

INT_LIMIT = 2**62
METRIC_CODES = {"count": "M_COUNT", "min": "M_MIN", "max": "M_MAX", "distinct": "M_DISTINCT"}


class AggregateDetector(WindowedDetector):
    """``aggregate`` scenarios sharing key and ``where``."""

    def __init__(self, scenarios: tuple[Scenario, ...]):
        # (text or number, column) -> the retained column holding it
        self.sources: dict[tuple[str, str], str] = {}
        self.value_of: list[str | None] = []  # per scenario
        for s in scenarios:
            assert s.metric is not None
            if s.metric.column is None:
                self.value_of.append(None)
                continue
            source = ("text" if s.metric.name == "distinct" else "number", s.metric.column)
            if source not in self.sources:
                self.sources[source] = "_val" if not self.sources else f"_val{len(self.sources)}"
            self.value_of.append(self.sources[source])
        super().__init__(scenarios)

    # --- values ----------------------------------------------------------
    def value_schema(self) -> dict[str, pl.DataType]:
        if not self.sources:  # counts only: a column of nulls, as one count always kept
            return {"_val": pl.Float64}
        return {name: pl.String if kind == "text" else pl.Float64 for (kind, _), name in self.sources.items()}

    def value_columns(self, rows: pl.DataFrame) -> dict[str, pl.Expr]:
        if not self.sources:
            return {"_val": pl.lit(None, dtype=pl.Float64)}
        out = {}
        for (kind, column), name in self.sources.items():
            if column not in rows.columns:
                reader = next(s for s, v in zip(self.scenarios, self.value_of, strict=True) if v == name)
                raise self._fail("metric", f"{reader.metric} reads column '{column}', which the events do "
                                 "not have", reader)
            dtype = rows.schema[column]
            if kind == "text":
                out[name] = pl.col(column) if dtype == pl.String else pl.col(column).cast(pl.String)
            elif dtype.is_numeric():
                out[name] = pl.col(column).cast(pl.Float64)
            else:
                out[name] = pl.col(column).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        return out

    def _numeric(self) -> list[tuple[Scenario, str]]:
        """The scenarios that read numbers, with their column of values."""
        return [(s, name) for s, name in zip(self.scenarios, self.value_of, strict=True)
                if name is not None and s.metric is not None and s.metric.name != "distinct"]

    def unusable(self, rows: pl.DataFrame) -> list[tuple[str, pl.Expr]]:
        """Relevant rows whose metric value is empty or not a number (a stream dead-letters them)."""
        numeric = self._numeric()
        if not numeric:
            return []
        values = self.value_columns(rows)
        relevant = self.relevance(rows)
        return [(s.id, relevant & (values[name].is_null() | values[name].is_nan())) for s, name in numeric]

    def check_values(self, relevant: pl.DataFrame) -> None:
        for s, name in self._numeric():
            values = relevant[name]
            if not values.has_nulls() and not values.is_nan().any():
                continue
            bad = relevant.filter(pl.col(name).is_null() | pl.col(name).is_nan())
            if bad.height:
                first = bad.row(0, named=True)
                assert s.metric is not None
                raise InputError(first.get("_file", "<events>"), row_number(first), s.metric.column, None,
                                 f"{s.metric} in scenario '{s.id}' needs a number in every relevant row; "
                                 "this one is empty or not a number")

    # --- evaluation ------------------------------------------------------
    def evaluate(self, view, group_start, new_sorted, group_keys):
        chunk, order = view.chunk, view.order
        ts_sorted = view.ts()
        n_groups = group_keys.len()
        prev_ptr, prev_combos = self._prev_pairs(group_keys)
        prev_group = np.repeat(np.arange(n_groups, dtype=np.int64), np.diff(prev_ptr))
        codes_of: dict[str, tuple[np.ndarray, int]] = {}  # a text column's codes, for every scenario on it
        found: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (scenario, rows, values, window starts)
        held_groups: list[np.ndarray] = []
        held_scenarios: list[np.ndarray] = []
        decided = np.zeros(n_groups, np.bool_)
        for number, (s, name) in enumerate(zip(self.scenarios, self.value_of, strict=True)):
            prev_init = np.zeros(n_groups, np.bool_)
            prev_init[prev_group[prev_combos == number]] = True
            alert, value, wstart, last = self._run(view, s, name, ts_sorted, group_start, new_sorted,
                                                   prev_init, codes_of)
            decided |= last >= 0
            held = np.flatnonzero(last == 1)
            held_groups.append(held)
            held_scenarios.append(np.full(held.size, number, np.int64))
            rows = np.flatnonzero(alert)
            found.append((number, rows, value[rows], wstart[rows]))
        # every scenario decides the same groups (those with fresh rows): their held pairs
        # replace what held before
        self._set_prev(group_keys, np.concatenate(held_groups), np.concatenate(held_scenarios),
                       np.flatnonzero(decided))
        rows = np.concatenate([f[1] for f in found])
        scen = np.concatenate([np.full(f[1].size, f[0], np.int64) for f in found])
        values = np.concatenate([f[2] for f in found]).astype(np.float64)
        starts = np.concatenate([f[3] for f in found])
        totals = rows - starts + 1
        lengths = np.minimum(totals, MAX_EVIDENCE)
        ev_ptr = np.zeros(rows.size + 1, np.int64)
        np.cumsum(lengths, out=ev_ptr[1:])
        ev_rows = np.repeat(starts, lengths) + (np.arange(ev_ptr[-1]) - np.repeat(ev_ptr[:-1], lengths))
        return self._candidates(chunk, order, rows, scen, values, ev_ptr, ev_rows, totals)

    def _run(self, view: SortedView, s: Scenario, name: str | None, ts_sorted: np.ndarray,
             group_start: np.ndarray, new_sorted: np.ndarray, prev_init: np.ndarray,
             codes_of: dict[str, tuple[np.ndarray, int]]) -> tuple[np.ndarray, ...]:
        """One scenario's kernel: (alert, value, window start, last decision) per sorted row."""
        assert s.metric is not None
        chunk = view.chunk
        metric = s.metric.name
        n = chunk.height
        ivals = np.zeros(1, np.int64)
        fvals = np.zeros(1, np.float64)
        codes = np.zeros(1, np.int64)
        n_codes = 0
        scale = 1.0
        threshold = Fraction(s.threshold)
        if name is not None and (metric in ("min", "max") or (metric in ("sum", "mean") and view.index is None)):
            fvals = view.take(chunk[name].to_numpy())
        metric_code = getattr(kernels, METRIC_CODES[metric]) if metric in METRIC_CODES else -1
        if metric == "distinct":
            assert name is not None and s.metric.column is not None
            if name not in codes_of:
                codes_of[name] = view.codes(s.metric.column, name)
            codes, n_codes = codes_of[name]
        elif metric in ("sum", "mean"):
            assert name is not None and s.metric.column is not None
            scaled = view.scaled(s.metric.column, fvals)
            exact = None if scaled is None else _fits(scaled, threshold, n)
            if exact is not None:
                d, ivals = exact
                scale = float(10**d)
                threshold = threshold * 10**d
                metric_code = kernels.M_SUM_INT if metric == "sum" else kernels.M_MEAN_INT
            else:
                fvals = view.take(chunk[name].to_numpy())
                metric_code = kernels.M_SUM_FLOAT if metric == "sum" else kernels.M_MEAN_FLOAT
        return kernels.aggregate_kernel(
            group_start, ts_sorted, ivals, fvals, codes, n_codes, new_sorted, prev_init,
            metric_code, kernels.OPS[s.op], s.window_us, float(s.threshold),
            threshold.numerator, threshold.denominator, scale)


def _fits(scaled: tuple[int, np.ndarray], threshold: Fraction, n: int) -> tuple[int, np.ndarray] | None:
    """The scaled integers, if sums of them (and threshold products) cannot overflow int64."""
    d, ints = scaled
    total = float(np.abs(ints).sum()) if ints.size else 0.0
    t = threshold * 10**d
    if total * t.denominator >= INT_LIMIT or abs(t.numerator) * max(n, 1) >= INT_LIMIT or total >= 2**53:
        return None
    return d, ints


__all__ = ["AggregateDetector"]
