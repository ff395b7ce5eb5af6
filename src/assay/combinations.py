"""Combination scenarios: items bought together within a window, as packs sharing key and
``where`` (one "last seen" time per item and key serves every combination of a pack)."""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from .lazy import LazyModule
from .scenarios import Scenario
from .windowed import MAX_EVIDENCE, WindowedDetector

# Combination packs over at least this many rows run their kernel on KERNEL_THREADS threads
SPLIT_ROWS = 200_000
KERNEL_THREADS = min(2, os.cpu_count() or 1)
combination_kernels = LazyModule("assay.combination_kernels")


class CombinationDetector(WindowedDetector):
    """A pack of ``combination`` scenarios sharing key and ``where`` (one pass for all)."""

    value_dtype = pl.Int32

    def __init__(self, scenarios: tuple[Scenario, ...]):
        super().__init__(scenarios)
        names: dict[str, int] = {}
        for s in scenarios:
            for item in s.items:
                names.setdefault(item, len(names))
        self.item_codes = names
        self._names = pl.Series(list(names), dtype=pl.String)  # built once, not per micro-batch
        self._codes = pl.Series(list(names.values()), dtype=pl.Int32)
        ptr = [0]
        flat: list[int] = []
        by_item: list[list[int]] = [[] for _ in names]
        for c, s in enumerate(scenarios):
            for item in s.items:
                flat.append(names[item])
                by_item[names[item]].append(c)
            ptr.append(len(flat))
        self.combo_ptr = np.array(ptr, np.int64)
        self.combo_items = np.array(flat, np.int64)
        self.item_ptr = np.zeros(len(names) + 1, np.int64)
        np.cumsum([len(b) for b in by_item], out=self.item_ptr[1:])
        self.item_combos = np.array([c for b in by_item for c in b], np.int64)
        self.windows = np.array([s.window_us for s in scenarios], np.int64)
        self.min_distinct = np.array([s.min_distinct for s in scenarios], np.int64)

    def relevance(self, rows: pl.DataFrame) -> pl.Expr:
        return super().relevance(rows) & pl.col("item").is_in(self._names.implode())

    @property
    def selective(self) -> bool:
        return True

    def value_expr(self, rows: pl.DataFrame) -> pl.Expr:
        return pl.col("item").replace_strict(self._names, self._codes, default=None, return_dtype=pl.Int32)

    def evaluate(self, view, group_start, new_sorted, group_keys):
        chunk, order = view.chunk, view.order
        ts_sorted = view.ts()
        items = view.take(chunk["_val"].to_numpy())  # int32 codes: the kernel takes them as they are
        prev_ptr, prev_combos = self._prev_pairs(group_keys)
        # a large input runs on two threads, by halves of its keys
        parts = KERNEL_THREADS if ts_sorted.shape[0] >= SPLIT_ROWS else 1
        (rows, combos, values, ev_ptr, ev_rows, ev_total, fin_g, fin_c) = combination_kernels.run_combination_kernel_split(
            group_start, ts_sorted, items, new_sorted, len(self.item_codes),
            self.combo_ptr, self.combo_items, self.item_ptr, self.item_combos,
            self.windows, self.min_distinct, prev_ptr, prev_combos, MAX_EVIDENCE, parts)
        # Every group of this chunk is decided anew: its final pairs replace the old ones.
        self._set_prev(group_keys, fin_g, fin_c, np.arange(group_keys.len(), dtype=np.int64))
        return self._candidates(chunk, order, rows, combos, values.astype(np.float64), ev_ptr, ev_rows,
                                ev_total)


__all__ = ["CombinationDetector"]
