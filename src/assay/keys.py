"""Dense integer codes for string columns (keys, distinct values), and key order.

Codes come from the strings' own bytes (``views``: exact by construction, one pass, no
copy of the column); a categorical cast of a million distinct values takes ~1.5 s, and
64-bit digests would need a second pass to check that no two strings share one.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import polars as pl

from .lazy import LazyModule, kernels
from .views import string_codes

grouping = LazyModule("assay.grouping")
# a column of at least this many rows is sorted by key on SORT_THREADS threads
PARALLEL_SORT_ROWS = 1_000_000
SORT_THREADS = min(2, os.cpu_count() or 1)
# up to this many rows, codes come from a dict
TINY_ROWS = 64


def encode(values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Dense codes (first-appearance order) and the value of each code."""
    codes, n = dense_codes(values)
    first = np.full(n, -1, np.int64)
    seen = codes >= 0
    # the first row of each code: positions in reverse so that the earliest write wins
    rows = np.flatnonzero(seen)[::-1]
    first[codes[rows]] = rows
    return codes, values.gather(first)


def dense_codes(values: pl.Series) -> tuple[np.ndarray, int]:
    """Codes 0..n-1 in order of first appearance; -1 for empty (null) values."""
    text = values if values.dtype == pl.String else values.cast(pl.String)
    if text.len() <= TINY_ROWS:  # none or a few rows: a dict costs less than a table
        seen: dict[str, int] = {}
        codes = np.array([-1 if v is None else seen.setdefault(v, len(seen)) for v in text.to_list()], np.int64)
        return codes, len(seen)
    codes32, n = string_codes(text)
    return codes32.astype(np.int64), n


def group_buffers(n_rows: int) -> list[np.ndarray]:
    """What ``group_rows`` of ``n_rows`` rows writes, written once (``grouping.scratch``): a
    thread that would otherwise wait can fault the pages in. Empty when such a sort runs on
    one thread (it allocates its own)."""
    if n_rows >= PARALLEL_SORT_ROWS and SORT_THREADS > 1:
        return grouping.scratch(n_rows)
    return []


def group_rows(codes: np.ndarray, n_codes: int, wide: bool = True,
               buffers: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of rows by dense code: (order, group_start), one group per code; on
    SORT_THREADS threads for a large column. ``wide``: the order as int64 (else it may be
    int32, half the memory, for NumPy's indexing only). ``buffers``: what ``group_buffers`` gave."""
    if codes.shape[0] >= PARALLEL_SORT_ROWS and SORT_THREADS > 1:
        return grouping.group_by_code(codes, n_codes, SORT_THREADS, wide, buffers)
    return kernels.group_by_code(codes.astype(np.int64, copy=False), n_codes)


class ColumnIndex:
    """Codes and (code, canonical) order of one column over a whole batch, shared by detectors.

    Several scenarios keyed by the same column (or counting distinct values of it) reuse
    one hashing and one sort; a detector's relevant rows are a subset, whose order is the
    full order restricted to them.
    """

    def __init__(self, values: pl.Series):
        self.codes, self.n = dense_codes(values)
        self._order: np.ndarray | None = None
        self._full: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def order(self) -> np.ndarray:
        if self._order is None:
            self._order, _ = group_rows(np.maximum(self.codes, 0), max(self.n, 1))
        return self._order

    def subset_codes(self, idx: np.ndarray) -> tuple[np.ndarray, int]:
        """Dense codes (first-appearance order) of the rows ``idx``; -1 stays -1."""
        return kernels.densify(self.codes[idx])

    def subset_groups(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(order, group_start) for rows ``idx`` grouped by code, canonical within a group."""
        if idx.size == self.codes.shape[0]:  # every row: the full grouping, computed once
            if self._full is None:
                starts = np.zeros(self.n + 1, np.int64)
                np.cumsum(np.bincount(self.codes, minlength=self.n), out=starts[1:])
                self._full = (self.order, starts)
            return self._full
        mask = np.zeros(self.codes.shape[0], np.bool_)
        mask[idx] = True
        return kernels.subset_groups(self.order, self.codes, mask)


class BatchIndex:
    """Per-batch cache of ColumnIndex objects and derived arrays, safe to share between threads.

    Detectors of one batch run in parallel; whichever first needs a column's codes computes
    them while the others wait for that entry (one lock per entry), never twice.
    """

    def __init__(self, rows: pl.DataFrame):
        self.rows = rows
        self._values: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def cached(self, key: str, make):  # type: ignore[no-untyped-def]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = make()
            return self._values[key]

    def column(self, name: str) -> ColumnIndex:
        return self.cached(f"column:{name}", lambda: ColumnIndex(self.rows[name]))
