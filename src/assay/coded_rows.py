"""A batch of combination packs read from Parquet as codes, without the rows' text.

Packs without a ``where`` read three columns of a row: its key, its item and its time.
Read by Polars, the key and the item become a 16-byte string view per row, each coded
back into an integer by a hash-table probe; memory a process touches for the first time
is much of a batch run's cost here (README, Performance). Here they are read page by page
(``parquet_pages``): each row group's dictionary is coded once, and a row's code is its
dictionary index looked up in the codes of that dictionary; a key's text is made from the
key table only for the alerts' keys (``StringCodes.texts``), and only a key that is not ASCII
is read again, to check it is UTF-8. The event ids, which alerts carry as text, are read by
Polars meanwhile.

Row groups are decoded on two threads; the key dictionaries are coded into the one key
table in file order (a row group waits for the one before it there), so codes do not
depend on which thread ran first.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl
import pyarrow as pa

from . import parquet_pages as pp
from .errors import InputError
from .events import READ_ERRORS, unreadable
from .lazy import LazyModule
from .pushdown import FileScan, relevant_rows
from .views import EXPECTED_ROWS_PER_VALUE, StringCodes

# packs reading fewer rows than this share of a file's first SHARE_ROWS are read with the
# scan's filter instead (Polars then decodes the other columns of the relevant rows only)
MIN_RELEVANT_SHARE = 0.25
SHARE_ROWS = 100_000
THREADS = 2
_NO_BASES = np.zeros(1, np.int64)
combination_kernels = LazyModule("assay.combination_kernels")


class PackCoder(Protocol):
    """A detector that evaluates a batch from key, item and time codes (``CombinationDetector``)."""

    key: str
    item_codes: dict[str, int]  # its items, by name
    where_tree: object | None  # with a ``where``, it reads more of a row than key, item and time

    def item_table(self) -> StringCodes:
        """Its items' codes (made with a kernel: asked for once the event ids are being read)."""
        ...

    def item_bits(self, lo: int, hi: int) -> int:
        """Bits of an item code packed with times ``lo``..``hi`` (0: they do not fit)."""
        ...


@dataclass
class CodedRows:
    """The rows of a batch's files in arrival order (``in_canonical_order`` sorts them by
    time), as codes: per key column each row's code (int32, -1: no value) and the text of
    each code; per pack each row's item code (-1: not one of its items).

    ``ts`` holds each row's time in epoch microseconds, or, when ``packed_bits`` > 0, the
    time from ``packed_base`` and the first pack's item code in one int64
    (``combination_kernels.pack_rows``), packed as the pages were read."""

    ts: np.ndarray
    seq: np.ndarray | None  # arrival numbers (None: row i's is i)
    event_ids: pl.Series
    keys: dict[str, tuple[np.ndarray, StringCodes]]  # per key column: each row's code, the table
    items: list[np.ndarray]
    scans: list[FileScan]
    packed_bits: int = 0
    packed_base: int = 0
    # packs reading each key column: the one pack reading a column may overwrite the codes of
    # the rows it does not read (``CombinationDetector._run_batch``)
    readers: dict[str, int] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.ts.shape[0])

    def times(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Epoch microseconds of ``rows`` (of every row by default)."""
        values = self.ts if rows is None else self.ts[rows]
        return values if not self.packed_bits else (values >> self.packed_bits) + self.packed_base

    def packed_for(self, number: int) -> tuple[np.ndarray, int] | None:
        """The rows packed for pack ``number`` and the bits of its item codes, when they were."""
        return (self.ts, self.packed_bits) if self.packed_bits and number == 0 else None

    def key_codes(self, column: str) -> tuple[np.ndarray, int]:
        codes, table = self.keys[column]
        return codes, len(table)

    def rows_at(self, column: str, rows: np.ndarray) -> pl.DataFrame:
        """Rows as alert candidates carry them: ``_key`` (text), ``_ts``, ``_eid``, ``_seq``."""
        codes, table = self.keys[column]
        return pl.DataFrame({"_key": table.texts(codes[rows]), "_ts": self.times(rows),
                             "_eid": self.event_ids.gather(rows),
                             "_seq": self.seq[rows] if self.seq is not None else rows.astype(np.int64)})

    def id_rows(self) -> pl.DataFrame:
        """``event_id`` of every row, and ``_seq`` unless it is the row's position."""
        if self.seq is None:
            return pl.DataFrame({"event_id": self.event_ids})
        return pl.DataFrame({"event_id": self.event_ids, "_seq": self.seq})

    def events(self) -> pl.DataFrame:
        """The relevant rows with every column, as the reader gives them (read again)."""
        return relevant_rows(self.scans).events

    def in_canonical_order(self) -> CodedRows:
        """Sorted by ts, ties in arrival order (the rows as they are when already so)."""
        if combination_kernels.times_sorted(self.ts, self.packed_bits):
            return self
        order = np.argsort(self.times(), kind="stable")
        seq = self.seq[order] if self.seq is not None else order.astype(np.int64)
        keys = {k: (codes[order], table) for k, (codes, table) in self.keys.items()}
        return CodedRows(self.ts[order], seq, self.event_ids.gather(order), keys,
                         [items[order] for items in self.items], self.scans, self.packed_bits, self.packed_base,
                         self.readers)


@dataclass
class _File:
    scan: FileScan
    key_sources: dict[str, str]  # key column -> the file's column
    item: str
    ts: str
    scale: tuple[int, int]  # ts to microseconds: (multiply, floor-divide)
    groups: list[dict[str, pp.Column]]  # per row group, by the file's column name
    span: tuple[int, int] | None  # the least and greatest ts (microseconds) by the statistics


def read_coded(scans: list[FileScan], coders: Sequence[PackCoder],
               on_file: Callable[[str, int], None] | None = None) -> CodedRows | None:
    """Every row of the scans' files as codes; None when a file cannot be read here or the
    packs read few of its rows (``MIN_RELEVANT_SHARE``): the caller reads them with Polars."""
    if not scans or not coders or any(c.where_tree is not None for c in coders):
        return None
    try:
        files = [_plan(scan, coders) for scan in scans]
    except pp.Unsupported:
        return None
    if _relevant_share(files[0], coders) < MIN_RELEVANT_SHARE:
        return None
    return _Reader(files, coders).read(on_file)


def _plan(scan: FileScan, coders: Sequence[PackCoder]) -> _File:
    """What to read of a file, checked against what ``parquet_pages`` reads."""
    schema, mapping = scan.footer.schema, scan.mapping
    keys = {c.key: mapping.get(c.key, c.key) for c in coders}
    item, ts = mapping.get("item", "item"), mapping.get("ts", "ts")
    for source in [*keys.values(), item]:
        if schema.get(source) != pl.String:
            raise pp.Unsupported(f"{source} is not text")
    dtype = schema.get(ts)
    if not isinstance(dtype, pl.Datetime) or dtype.time_unit not in pp.TIME_UNITS_PER_US:
        raise pp.Unsupported(f"{ts} is not a timestamp")
    names = list(dict.fromkeys([*keys.values(), item, ts]))
    groups = [{c.name: c for c in pp.columns_of(scan.footer.meta, g, names)}
              for g in range(len(scan.footer.row_groups))]
    for group, rows in zip(groups, scan.footer.row_groups, strict=True):
        if any(c.values != rows for c in group.values()):
            raise pp.Unsupported("a column's values are not one per row")
    scale = pp.TIME_UNITS_PER_US[dtype.time_unit]
    return _File(scan, keys, item, ts, scale, groups, _span(scan, ts, scale))


def _span(scan: FileScan, ts: str, scale: tuple[int, int]) -> tuple[int, int] | None:
    """The file's least and greatest ts in microseconds, when every row group's statistics
    give them."""
    meta = scan.footer.meta
    column = next(i for i in range(meta.num_columns) if meta.schema.column(i).path == ts)
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min_raw, int):
            return None
        lows.append(stats.min_raw)
        highs.append(stats.max_raw)
    if not lows:
        return None
    multiply, divide = scale
    return min(lows) * multiply // divide, max(highs) * multiply // divide


def _relevant_share(file: _File, coders: Sequence[PackCoder]) -> float:
    """The share of the file's first rows (``SHARE_ROWS``) holding an item of some pack: read
    by Polars, as no kernel need be loaded for it. It only chooses how to read the files."""
    names = pl.Series(sorted({name for c in coders for name in c.item_codes}), dtype=pl.String)
    try:
        share = pl.scan_parquet(file.scan.path).head(SHARE_ROWS).select(
            pl.col(file.item).is_in(names.implode()).mean()).collect().item()
    except READ_ERRORS as exc:
        raise unreadable(file.scan.path, exc) from None
    return 1.0 if share is None else float(share)


class _Reader:
    """One read of the files' row groups into the arrays of ``CodedRows``."""

    def __init__(self, files: list[_File], coders: Sequence[PackCoder]):
        self.files = files
        self.coders = coders
        self.items: list[StringCodes] = []
        total = sum(f.scan.footer.rows for f in files)
        self.ts = np.empty(total, np.int64)
        self.item_codes = [np.empty(total, np.int32) for _ in coders]
        self.columns = list(dict.fromkeys(c.key for c in coders))
        expected = min(total, max(1 << 16, min(total // EXPECTED_ROWS_PER_VALUE, 1 << 23)))
        self.tables = {c: StringCodes(expected) for c in self.columns}
        self.codes = {c: np.empty(total, np.int32) for c in self.columns}
        self.failed = False
        self.items_made = threading.Event()
        # one pack and the footers' time statistics: rows are packed as they are read
        # (``CodedRows.packed_bits``), and no array of times is written beside them
        spans = [f.span for f in files]
        self.pack = (0, 0)
        if len(coders) == 1 and spans and all(span is not None for span in spans):
            lo = min(span[0] for span in spans if span is not None)
            hi = max(span[1] for span in spans if span is not None)
            self.pack = (lo, coders[0].item_bits(lo, hi))

    def read(self, on_file: Callable[[str, int], None] | None) -> CodedRows | None:
        ids = self._read_ids()
        tasks = [(f, g, int(start)) for f in self.files
                 for g, start in enumerate(np.cumsum([0, *f.scan.footer.row_groups])[:-1])]
        offsets = np.cumsum([0, *[f.scan.footer.rows for f in self.files]])
        turns = [threading.Event() for _ in range(len(tasks) + 1)]
        turns[0].set()
        futures: list[Future[None]] = []
        with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="assay-pages") as pool:
            for i, (f, g, start) in enumerate(tasks):
                base = int(offsets[self.files.index(f)] + start)
                futures.append(pool.submit(self._group, f, g, base, turns[i], turns[i + 1]))
            touching = _Toucher([*(t.slots for t in self.tables.values()), self.ts, *self.item_codes,
                                 *self.codes.values()])
            try:
                # the items' codes are made with a kernel: this waits for Numba's import and the
                # kernels' loading (on the warm-up thread), while Polars reads the event ids, the
                # first row groups' pages are decompressed and the arrays are touched
                self.items = [c.item_table() for c in self.coders]
                touching.stop()
                self.items_made.set()
                for fut in futures:
                    fut.result()
            except pp.Unsupported:
                return None
            finally:
                touching.stop()
                self.failed = True  # any task still waiting gives up
                self.items_made.set()
                for t in turns:
                    t.set()
        if on_file:
            for f in self.files:
                on_file(str(f.scan.path), 0)
        keys = {c: (self.codes[c], self.tables[c]) for c in self.columns}
        lo, bits = self.pack
        return CodedRows(self.ts, None, ids.result(), keys, self.item_codes,
                         [f.scan for f in self.files], bits, lo if bits else 0,
                         dict(Counter(c.key for c in self.coders)))

    def _read_ids(self) -> Future[pl.Series]:
        """The event ids, read by Polars while the pages are decoded (it releases the GIL)."""
        def read() -> pl.Series:
            # once Numba is imported (on the warm-up thread, or here when nothing imports it
            # yet): its import, Python holding the GIL, is what every kernel waits for, and
            # Polars reading beside it on both cores made it take 0.16-0.24 s instead of 0.11 s
            importlib.import_module("numba")
            frames = []
            for f in self.files:
                source = f.scan.mapping.get("event_id", "event_id")
                try:
                    frames.append(pl.read_parquet(f.scan.path, columns=[source]).select(
                        pl.col(source).cast(pl.String).alias("event_id")))
                except READ_ERRORS as exc:
                    raise unreadable(f.scan.path, exc) from None
            return pl.concat(frames)["event_id"] if len(frames) > 1 else frames[0]["event_id"]

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assay-ids")
        ids = pool.submit(read)
        pool.shutdown(wait=False)
        return ids

    def _group(self, file: _File, g: int, base: int, mine: threading.Event, next_turn: threading.Event) -> None:
        """Decode one row group into rows ``base``.. of the arrays."""
        path = file.scan.path
        group = file.groups[g]
        rows = slice(base, base + file.scan.footer.row_groups[g])
        try:
            # the pages first: decompressing needs no kernel (and releases the GIL)
            item_pages = list(pp.pages(path, group[file.item]))
            ts_pages = list(pp.pages(path, group[file.ts]))
            key_pages = {c: list(pp.pages(path, group[src])) for c, src in file.key_sources.items()}
            self.items_made.wait()
            if self.failed:
                return
            column = group[file.item]
            for table, out in zip(self.items, self.item_codes, strict=True):
                pp.decode(item_pages, column, path, _finder(path, column, table), -1, np.dtype(np.int32), out[rows])
            self._times(file, group[file.ts], ts_pages, rows)
            mine.wait()
            if self.failed:
                return
            coded = {c: self._code_keys(c, path, group[src], key_pages[c]) for c, src in file.key_sources.items()}
        finally:
            mine.wait()  # a row group that failed passes the turn on in its place all the same
            next_turn.set()
        for c, src in file.key_sources.items():
            codes = coded[c]
            pp.decode(key_pages[c], group[src], path, lambda page, _, k=codes: k[id(page)], -1, np.dtype(np.int32),
                      self.codes[c][rows])

    def _times(self, file: _File, column: pp.Column, pages: list[pp.Page], rows: slice) -> None:
        """A row group's times, packed with the pack's item codes when the rows are packed."""
        path = file.scan.path
        multiply, divide = file.scale
        seen = [np.iinfo(np.int64).max, np.iinfo(np.int64).min]  # the least and greatest value

        def values(page: pp.Page, n: int) -> np.ndarray:
            # a dictionary's entries or a PLAIN page's values: every time a row can hold (a
            # dictionary is a tenth of the rows here, so its bounds cost less than the rows')
            out = pp.int64_values(path, column, page, n)
            if (multiply, divide) != (1, 1):
                out = out * multiply // divide
            if n:
                seen[0], seen[1] = min(seen[0], int(out.min())), max(seen[1], int(out.max()))
            return out

        ts = pp.decode(pages, column, path, values, 0, np.dtype(np.int64), None if self.pack[1] else self.ts[rows])
        lo, bits = self.pack
        if bits:
            if column.optional and column.nulls and ts.size:  # an empty time is 0, in no page's values
                seen = [min(seen[0], int(ts.min())), max(seen[1], int(ts.max()))]
            if ts.size and (seen[0] < lo or seen[1] > (file.span or (lo, lo))[1]):
                raise pp.Unsupported("times outside the statistics' range")
            combination_kernels.pack_rows(ts, self.item_codes[0][rows], lo, bits, self.ts[rows])

    def _code_keys(self, column: str, path: Path, source: pp.Column,
                   pages: list[pp.Page]) -> dict[int, np.ndarray]:
        """Codes of a row group's key dictionary and PLAIN values (by page), new ones added to
        the table (on the row group's turn, in file order) and checked as UTF-8; their text is
        made from the table for the alerts' keys only (``StringCodes.texts``)."""
        table = self.tables[column]
        out = {}
        for i, page in enumerate(pages):
            if not (page.dictionary or page.encoding == pp.PLAIN):
                continue
            n = page.values if page.defined is None or page.dictionary else int(page.defined.sum())
            views, longest, ascii_only = pp.text_views(path, source, page, n)
            codes = np.empty(n, np.int32)
            before = len(table)
            table.code_views(views, (views[:, 0] & np.uint64(0xFFFFFFFF)) > 0,  # an empty text is no value
                             page.body if longest > pp.INLINE else None, _NO_BASES, True, codes)
            if len(table) > before and not ascii_only:
                _check_utf8(path, source, page, views, codes, before, len(table) - before)
            out[i] = codes
        return {id(pages[i]): codes for i, codes in out.items()}


class _Toucher:
    """Memory written before it is used, on a thread of its own, until ``stop``.

    Memory a process touches for the first time costs 0.4-3 ms per MB here (README,
    Performance), about 80 ms for the 208 MB of a 10 M-row batch's arrays and key table,
    paid by the threads decoding pages as they write them; the row groups' threads wait for the
    kernels to load first, with a core to spare. Zeros are written (what the key table holds
    already; the arrays are written over): ``stop`` returns once the thread is done, before
    anything else writes to them."""

    STEP = 1 << 21  # bytes written between looks at the flag

    def __init__(self, arrays: list[np.ndarray]):
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._touch, args=(arrays,), name="assay-touch", daemon=True)
        self._thread.start()

    def _touch(self, arrays: list[np.ndarray]) -> None:
        # spare CPU only: the kernels' loading, which all else waits for, goes first
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        for array in arrays:
            raw = array.reshape(-1).view(np.uint8)
            for start in range(0, raw.shape[0], self.STEP):
                if self._stopped.is_set():
                    return
                raw[start:start + self.STEP] = 0

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _finder(path: Path, column: pp.Column, table: StringCodes) -> Callable[[pp.Page, int], np.ndarray]:
    """A page's values as codes in ``table`` (-1: not in it)."""
    def find(page: pp.Page, n: int) -> np.ndarray:
        views, longest, _ = pp.text_views(path, column, page, n)
        codes = np.empty(n, np.int32)
        table.code_views(views, np.ones(n, np.bool_), page.body if longest > pp.INLINE else None, _NO_BASES,
                         False, codes)
        return codes
    return find


def _check_utf8(path: Path, column: pp.Column, page: pp.Page, views: np.ndarray, codes: np.ndarray, before: int,
                new: int) -> None:
    """Codes ``before``.. (new in the table) hold UTF-8 text, as Polars' read of the column
    would have them: InputError naming the first that does not."""
    rows = np.flatnonzero(codes >= before)[::-1]
    first = np.empty(new, np.int64)
    first[codes[rows] - before] = rows  # written last: the first row of each code
    texts = pa.Array.from_buffers(pa.string_view(), new, [None, pa.py_buffer(np.ascontiguousarray(views[first])),
                                                          pa.py_buffer(page.body)])
    try:
        texts.validate(full=True)
    except pa.ArrowInvalid:
        raw = texts.view(pa.binary_view()).to_pylist()
        bad = next((b for b in raw if b is not None and not _is_utf8(b)), None)
        raise InputError(str(path), None, column.name, bad, "not valid UTF-8 text") from None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
