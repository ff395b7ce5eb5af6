"""Exact integer codes for strings, read from Polars' own memory (Arrow string views).

Polars keeps strings as views of 16 bytes; a string of up to 12 bytes lives inside its
view. ``StringCodes`` codes them by those bytes in one Numba pass, exact by construction
(no hash digest stands for a string, so no second pass has to verify the codes), without
copying the column: each of its chunks is read where it lies.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pyarrow as pa

from .lazy import LazyModule

view_kernels = LazyModule("assay.view_kernels")
_NEWEST = pl.CompatLevel.newest()
_LENGTH = np.uint64(0xFFFFFFFF)


def _view_chunks(text: pl.Series):  # type: ignore[no-untyped-def]
    """Each chunk of a String series as (views (n, 2) uint64, valid rows, long strings'
    bytes or None when every string is inline, each data buffer's start in them)."""
    for chunk in text.get_chunks():
        arr = chunk.to_arrow(compat_level=_NEWEST)
        if not pa.types.is_string_view(arr.type):
            arr = arr.cast(pa.string_view())
        buffers = arr.buffers()
        words = np.frombuffer(buffers[1], np.uint64).reshape(-1, 2)[arr.offset:arr.offset + len(arr)]
        valid = np.ones(len(arr), np.bool_) if arr.null_count == 0 else chunk.is_not_null().to_numpy()
        # a view's buffer index counts every data buffer: an absent one stays in its place
        datas = [np.frombuffer(b, np.uint8) if b is not None else np.zeros(0, np.uint8) for b in buffers[2:]]
        bases = np.zeros(max(len(datas), 1), np.int64)
        if datas:
            np.cumsum([d.size for d in datas[:-1]], out=bases[1:])
        if datas and int((words[:, 0] & _LENGTH).max(initial=0)) <= view_kernels.INLINE:
            datas = []  # bytes of strings no longer in the chunk (it is a slice or a selection)
        data = np.concatenate(datas) if len(datas) > 1 else datas[0] if datas else None
        if data is not None:
            data.setflags(write=False)  # as Arrow's own buffers are: one signature for the kernel
        yield words, valid, data, bases


# a filter of 32 bits per value turns away all but ~0.3% of the rows holding none of them;
# at most 2 MB (it stays in the cache)
BLOOM_BITS_PER_VALUE = 32
MAX_BLOOM_WORDS = 1 << 18
SPARSE_SLOTS = 1 << 13  # 192 KB: in the cache
_NO_BYTES = np.zeros(0, np.uint8)
_NO_BYTES.setflags(write=False)


class StringCodes:
    """A table of distinct strings, each with a code 0, 1, 2... in order of first appearance.

    ``add`` codes a column, giving new strings new codes; ``find`` only looks them up (-1:
    not in the table). Empty (null) values are -1.
    """

    def __init__(self, expected: int = 0):
        capacity = 16
        while capacity * 3 < expected * 4 + 4:
            capacity *= 2
        # a small table is made sparse (one value in eight slots, up to SPARSE_SLOTS): a probe
        # then rarely meets another value first (a pack's 500 items looked up for 10 M rows:
        # 0.14 s in 1,024 slots, 0.09 s in 4,096)
        while capacity < 8 * expected and capacity < SPARSE_SLOTS:
            capacity *= 2
        self.slots = np.zeros(capacity * 3, np.uint64)
        self.count = 0
        self.arena = np.zeros(256, np.uint8)
        self.arena_used = 0

    def __len__(self) -> int:
        return self.count

    def add(self, values: pl.Series) -> np.ndarray:
        return self._code(values, True)

    def find(self, values: pl.Series) -> np.ndarray:
        return self._code(values, False)

    def _code(self, values: pl.Series, insert: bool) -> np.ndarray:
        text = values if values.dtype == pl.String else values.cast(pl.String)
        out = np.empty(text.len(), np.int32)
        done = 0
        for words, valid, data, bases in _view_chunks(text):
            n = words.shape[0]
            self.code_views(words, valid, data, bases, insert, out[done:done + n])
            done += n
        return out

    def code_views(self, words: np.ndarray, valid: np.ndarray, data: np.ndarray | None, bases: np.ndarray,
                   insert: bool, codes: np.ndarray) -> None:
        """Codes of strings given as Arrow views ((n, 2) uint64; ``data``: the bytes of those
        longer than ``view_kernels.INLINE``, read-only, None when there are none; ``bases``:
        each data buffer's start in it) into ``codes``."""
        n = words.shape[0]
        row = 0
        while True:
            if data is None:
                row, self.count = view_kernels.encode_short(words, valid, row, self.slots, self.count,
                                                            insert, codes)
            else:
                row, self.count, self.arena_used = view_kernels.encode(
                    words, valid, data, bases, row, self.slots, self.count, self.arena,
                    self.arena_used, insert, codes)
            if row == n:
                return
            self._grow()

    def texts(self, codes: np.ndarray) -> pl.Series:
        """The strings of ``codes`` (each a code of the table), rebuilt from the table itself:
        a batch read as codes makes text of its alerts' keys only."""
        views = view_kernels.table_views(self.slots, self.count, np.ascontiguousarray(codes, np.int64))
        arena = self.arena[:self.arena_used].copy()  # the table's own may grow and move
        text = pa.Array.from_buffers(pa.string_view(), views.shape[0], [None, pa.py_buffer(views), pa.py_buffer(arena)])
        # through the Arrow C interface, as it is: Polars' own conversion of a pyarrow array
        # imports pyarrow.compute first (25-30 ms of a run, for nothing else)
        return pl.Series(_ArrowArray(text))

    def rows_in(self, values: pl.Series, parts: int = 2) -> np.ndarray:
        """Positions (int64, ascending) of the rows whose value is in the table: one pass on
        ``parts`` threads (by chunks), most rows turned away by a Bloom filter that stays in
        the cache (10 M event ids against 65,000: 0.05 s; Polars' ``is_in`` on two threads 0.13 s)."""
        text = values if values.dtype == pl.String else values.cast(pl.String)
        n_words = 64
        while n_words * 64 < self.count * BLOOM_BITS_PER_VALUE and n_words < MAX_BLOOM_WORDS:
            n_words *= 2
        bloom = view_kernels.bloom_of(self.slots, self.arena, n_words)
        chunks = []
        start = 0
        for words, valid, data, bases in _view_chunks(text):
            chunks.append((start, words, valid, data, bases))
            start += words.shape[0]

        def scan(part: list) -> np.ndarray:  # type: ignore[type-arg]
            out = np.empty(sum(c[1].shape[0] for c in part), np.int64)
            found = 0
            for first, words, valid, data, bases in part:
                found += view_kernels.member_rows(words, valid, _NO_BYTES if data is None else data, bases,
                                                  data is None, self.slots, self.arena, bloom, first, out[found:])
            return out[:found]

        # parts of about equal rows, each a run of whole chunks: their positions stay in order
        cuts = [0]
        for k in range(1, parts):
            cuts.append(next((i for i, c in enumerate(chunks) if c[0] >= start * k // parts), len(chunks)))
        cuts.append(len(chunks))
        groups = [chunks[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
        if len(groups) < 2:
            return scan(chunks)
        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="assay-rows-in") as pool:
            return np.concatenate(list(pool.map(scan, groups)))

    def _grow(self) -> None:
        """More room: the table when three quarters full, else the arena (a long string's bytes
        did not fit)."""
        capacity = self.slots.shape[0] // 3
        if self.count >= capacity - capacity // 4:
            self.slots = view_kernels.rehash(self.slots, self.arena, capacity * 2)
        else:
            arena = np.zeros(max(self.arena.size * 2, self.arena_used + (1 << 16)), np.uint8)
            arena[:self.arena_used] = self.arena[:self.arena_used]
            self.arena = arena


class _ArrowArray:
    """An Arrow array as the Arrow PyCapsule interface alone shows it."""

    def __init__(self, array: pa.Array):
        self._array = array

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        return self._array.__arrow_c_array__(requested_schema)


# A column of n rows starts with a table for n / EXPECTED_ROWS_PER_VALUE distinct values (at
# least 65,536 and at most 2**24 slots' worth): each doubling on the way writes a new table,
# and memory written for the first time is most of what coding costs (1-3 ms per MB here).
# Slots never written cost nothing (the zeroed pages are mapped when first touched)
EXPECTED_ROWS_PER_VALUE = 8


def string_codes(values: pl.Series) -> tuple[np.ndarray, int]:
    """Dense codes (int32, first-appearance order, -1 for no value) and their count."""
    n = values.len()
    table = StringCodes(min(n, max(1 << 16, min(n // EXPECTED_ROWS_PER_VALUE, 1 << 23))))
    codes = table.add(values)
    return codes, len(table)
