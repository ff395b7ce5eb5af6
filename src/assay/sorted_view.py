"""A detector's rows in (key, canonical) order, and its columns gathered into that order."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from .keys import BatchIndex, dense_codes
from .lazy import kernels

# Exact decimal arithmetic for sums: values with up to this many decimals.
MAX_DECIMALS = 6


class SortedView:
    """A detector's rows in (key, canonical) order, and its columns gathered into that order.

    With a batch ``index`` (and ``idx``, the rows' positions in the batch), columns come
    from the whole batch's arrays; when every row of the batch is relevant, the gathered
    arrays are cached there and shared with the other detectors of the same key.
    """

    def __init__(self, chunk: pl.DataFrame, order: np.ndarray, *, index: BatchIndex | None = None,
                 idx: np.ndarray | None = None, key: str = ""):
        self.chunk = chunk
        self.order = order
        self.index = index
        self.idx = idx
        self.key = key
        self.full = index is not None and idx is not None and idx.size == index.rows.height
        self._take: np.ndarray | None = None

    def take(self, values: np.ndarray) -> np.ndarray:
        """Chunk-aligned values in sorted order."""
        return values[self.order]

    def _batch_take(self) -> np.ndarray:
        if self._take is None:
            assert self.index is not None and self.idx is not None
            self._take = self.index.column(self.key).order if self.full else self.idx[self.order]
        return self._take

    def _batch(self, name: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        """A whole-batch array in this view's order (cached per key when every row is in)."""
        assert self.index is not None
        if self.full:
            return self.index.cached(f"sorted:{self.key}:{name}", lambda: make()[self._batch_take()])
        return make()[self._batch_take()]

    def ts(self) -> np.ndarray:
        if self.index is None:
            return self.take(self.chunk["_ts"].to_numpy())
        index = self.index
        return self._batch("ts", lambda: index.cached("ts", lambda: epoch_us(index.rows["ts"])))

    def codes(self, column: str, retained: str = "_val") -> tuple[np.ndarray, int]:
        """Dense codes of ``column``'s values in sorted order (``retained``: the chunk's column
        that holds them)."""
        if self.index is None or column not in self.index.rows.columns:
            dense, n = dense_codes(self.chunk[retained])
            return self.take(dense), n
        col = self.index.column(column)
        if self.full:
            return self._batch(f"codes:{column}", lambda: col.codes), col.n
        dense, n = col.subset_codes(self.idx)  # type: ignore[arg-type]
        return self.take(dense), n

    def scaled(self, column: str, fvals_sorted: np.ndarray) -> tuple[int, np.ndarray] | None:
        if self.index is None:
            return decimal_scale(fvals_sorted)
        index = self.index

        def whole() -> tuple[int, np.ndarray] | None:
            # over the whole column (rows outside the scenario count as 0): one pass per column
            values = index.rows[column].cast(pl.Float64, strict=False).fill_nan(0).fill_null(0)
            return decimal_scale(values.to_numpy())

        full = index.cached(f"scale:{column}", whole)
        if full is None:
            return None
        d, ints = full
        return d, self._batch(f"scaled:{column}", lambda: ints)


def epoch_us(ts: pl.Series) -> np.ndarray:
    return ts.dt.epoch("us").to_numpy() if ts.dtype != pl.Int64 else ts.to_numpy()


def decimal_scale(values: np.ndarray) -> tuple[int, np.ndarray] | None:
    """Smallest d such that every value is an integer number of 10**-d, and those integers."""
    if values.size == 0:
        return 0, np.zeros(0, np.int64)
    if np.abs(values).max() >= 2**53 / 10**MAX_DECIMALS:
        return None
    d, scaled = kernels.decimal_scale(np.ascontiguousarray(values, dtype=np.float64), MAX_DECIMALS)
    return None if d < 0 else (d, scaled)
