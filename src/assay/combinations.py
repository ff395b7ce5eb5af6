"""Combination scenarios: items bought together within a window, as packs sharing key and
``where`` (one "last seen" time per item and key serves every combination of a pack)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from .keys import BatchIndex, group_buffers, group_rows
from .lazy import LazyModule
from .scenarios import Scenario
from .sorted_view import epoch_us
from .views import StringCodes, string_codes
from .windowed import MAX_EVIDENCE, WindowedDetector, empty_candidates

if TYPE_CHECKING:
    from .coded_rows import CodedRows

# Combination packs over at least this many rows run their kernel on KERNEL_THREADS threads
SPLIT_ROWS = 200_000
KERNEL_THREADS = min(2, os.cpu_count() or 1)
combination_kernels = LazyModule("assay.combination_kernels")
# a batch's rows are packed (time << item bits | item) into this many bits of an int64
PACKED_BITS = 62


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
        self._item_table: StringCodes | None = None

    def update(self, rows: pl.DataFrame, *, retain: bool = True, index: BatchIndex | None = None) -> pl.DataFrame:
        if retain or index is None or self.lanes:
            return super().update(rows, retain=retain, index=index)
        return self._update_batch(rows, index)

    def item_table(self) -> StringCodes:
        """The pack's items, coded in its own order."""
        if self._item_table is None:
            table = StringCodes(len(self.item_codes))
            table.add(self._names)  # codes are the pack's own: names in code order
            self._item_table = table
        return self._item_table

    def row_items(self, rows: pl.DataFrame) -> np.ndarray:
        """Each row's code among the pack's items (int32); -1 for another item or none, and for
        a row its ``where`` leaves out (a row without a key is left out by its key code)."""
        table = self.item_table()
        items = table.find(rows["item"]) if "item" in rows.columns else np.full(rows.height, -1, np.int32)
        if self.where_tree is not None:
            relevant = WindowedDetector.relevance(self, rows)
            items[~rows.select(relevant.fill_null(False)).to_series().to_numpy()] = -1
        return items

    def _update_batch(self, rows: pl.DataFrame, index: BatchIndex) -> pl.DataFrame:
        """A whole batch with no state before or after it: item and key codes read from the
        columns' own memory (``views``) and rows grouped by key code, without the copy of the
        relevant rows that a stream's micro-batches retain (README, Performance: memory a run
        touches for the first time is much of a batch run's cost)."""
        WindowedDetector.relevance(self, rows)  # the key and ``where``; raises as usual

        def beside_the_keys() -> tuple[np.ndarray, np.ndarray, int, list[np.ndarray]]:
            """What needs no key codes, on a thread of its own while they are made (the
            kernels and Polars release the GIL): item codes, times, and, when the rows are
            not packed, the grouping's buffer written once (memory first touched costs; see
            ``grouping.scratch``; packed rows' item codes make room for it)."""
            items = self.row_items(rows)
            ts, item_bits = self._packed(rows["ts"], items)
            return items, ts, item_bits, [] if item_bits else group_buffers(rows.height)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="assay-items") as pool:
            coding = pool.submit(beside_the_keys)
            keys, n_keys = index.cached(f"views:{self.key}", lambda: string_codes(rows[self.key]))
            items, ts, item_bits, buffers = coding.result()
        key, ts_expr = self._key_and_ts(rows.schema)

        def rows_at(wanted: np.ndarray) -> pl.DataFrame:
            return rows.select(pl.col(self.key, "ts", "event_id", "_seq").gather(pl.Series(wanted))).select(
                key.alias("_key"), ts_expr.alias("_ts"), pl.col("event_id").alias("_eid"), "_seq")

        return self._run_batch(keys, n_keys, items, ts, item_bits, buffers, rows_at)

    def update_coded(self, coded: CodedRows, number: int) -> pl.DataFrame:
        """A whole batch read as codes (``coded_rows``; ``number``: this detector's place
        among the packs it was read for)."""
        items = coded.items[number]
        keys, n_keys = coded.key_codes(self.key)
        packed = coded.packed_for(number)
        if packed is None:
            ts, item_bits = self._packed(pl.Series(coded.times()), items)
        else:  # packed as the pages were read
            ts, item_bits = packed
        return self._run_batch(keys, n_keys, items, ts, item_bits, [],
                               lambda wanted: coded.rows_at(self.key, wanted), coded.readers.get(self.key) == 1)

    def _run_batch(self, keys: np.ndarray, n_keys: int, items: np.ndarray, ts: np.ndarray, item_bits: int,
                   buffers: list[np.ndarray], rows_at: Callable[[np.ndarray], pl.DataFrame],
                   keys_are_mine: bool = False) -> pl.DataFrame:
        """Rows grouped by key code, the kernel over them, and candidates from the rows
        ``rows_at`` gives (``_key``, ``_ts``, ``_eid``, ``_seq``): only the alerts' rows and
        their evidence are read as text. With rows packed (``item_bits``), ``items`` is
        overwritten (the key order is written into its memory: no new memory to touch);
        ``keys_are_mine``: no other reader of ``keys`` needs the codes of the rows this pack
        does not read, which then become its cut-off group's (no new array of codes)."""
        freq, unusable = combination_kernels.usable_rows(keys, items, len(self.item_codes))
        # rows without an item of the pack or a key: a group of their own past the keys', cut off
        codes = keys
        if unusable:
            codes = keys if keys_are_mine else np.empty_like(keys)
            combination_kernels.group_codes(keys, items, n_keys, codes)
        if item_bits:  # the kernel reads the items from ``ts``: their memory takes the key order
            buffers = [items]
        order, group_start = group_rows(codes, n_keys + 1, wide=False, buffers=buffers)
        del buffers
        group_start = group_start[:n_keys + 1]
        order = order[:group_start[-1]]
        parts = KERNEL_THREADS if order.shape[0] >= SPLIT_ROWS else 1
        nothing_held = np.zeros(n_keys + 1, np.int64)
        (found, combos, values, ev_ptr, ev_rows, ev_total, _, _) = combination_kernels.run_combination_kernel_split(
            group_start, ts, items, np.ones(order.shape[0], np.bool_), len(self.item_codes),
            self.combo_ptr, self.combo_items, self.item_ptr, self.item_combos, self.windows,
            self.min_distinct, nothing_held, np.zeros(0, np.int64), MAX_EVIDENCE, parts, order, item_bits, freq)
        if found.size == 0:
            return empty_candidates()
        chunk = rows_at(np.concatenate([order[found], order[ev_rows]]))
        return self._candidates(chunk, None, np.arange(found.size), combos, values.astype(np.float64), ev_ptr,
                                np.arange(found.size, chunk.height), ev_total)

    def item_bits(self, lo: int, hi: int) -> int:
        """The bits a row's item code takes when rows of times ``lo``..``hi`` are packed with
        it (``combination_kernels.pack_rows``); 0 when the span leaves too few bits (a pack of
        1,000 items: 142 years of microseconds; of 100,000: 1)."""
        bits = max(1, len(self.item_codes).bit_length())
        return bits if hi - lo < 1 << max(PACKED_BITS - bits, 0) else 0

    def _packed(self, ts: pl.Series, items: np.ndarray) -> tuple[np.ndarray, int]:
        """Each row's time (from the batch's first) and item code in one int64, and the bits
        of the code (``item_bits``); the times alone and 0 when they do not fit."""
        epoch = ts if ts.dtype == pl.Int64 else ts.dt.epoch("us")
        if epoch.len() == 0:
            return np.zeros(0, np.int64), self.item_bits(0, 0)
        lo, hi = int(epoch.min()), int(epoch.max())  # type: ignore[arg-type]
        bits = self.item_bits(lo, hi)
        if not bits:
            return epoch_us(ts), 0
        out = np.empty(epoch.len(), np.int64)
        start = 0
        for chunk in epoch.get_chunks():  # read where they are: no copy of the column first
            values = chunk.to_numpy()
            combination_kernels.pack_rows(values, items[start:start + values.shape[0]], lo, bits,
                                          out[start:start + values.shape[0]])
            start += values.shape[0]
        return out, bits

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
