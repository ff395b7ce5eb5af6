"""A flat Parquet column read page by page, as codes or integers: what a batch of
combination packs needs of a file, without the rows' text.

Read by Polars, a dictionary-encoded text column becomes one 16-byte string view per row,
which the batch then codes back into integers, one hash-table probe per row. Read here,
each row group's dictionary is coded once (a few hundred thousand distinct keys, not
millions of rows) and each row's code is its dictionary index looked up in a small array.

What this reads: flat columns of a file without encryption; PLAIN and dictionary encodings
(PLAIN_DICTIONARY, RLE_DICTIONARY) in data pages of versions 1 and 2; pages uncompressed
or compressed with Snappy, gzip, Brotli, zstd or LZ4_RAW; text (BYTE_ARRAY) and 64-bit
integers and timestamps. Anything else, and a page that does not hold what the footer or
its header says, raises ``Unsupported``: the run then reads the file with Polars instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .lazy import LazyModule

parquet_kernels = LazyModule("assay.parquet_kernels")
INLINE = 12  # a string of up to 12 bytes lives inside its 16-byte Arrow view (parquet_kernels.INLINE)

CODECS = {"UNCOMPRESSED": None, "SNAPPY": "snappy", "GZIP": "gzip", "BROTLI": "brotli", "ZSTD": "zstd",
          "LZ4_RAW": "lz4_raw"}
ENCODINGS = {"PLAIN", "PLAIN_DICTIONARY", "RLE_DICTIONARY", "RLE", "BIT_PACKED"}
PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY = 0, 2, 8
DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3
TIME_UNITS_PER_US = {"ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}  # (multiply, floor-divide)


class Unsupported(Exception):
    """The column uses a feature this reader does not decode."""


@dataclass(frozen=True)
class Column:
    """One column chunk of a row group, as the footer describes it."""

    name: str
    start: int  # file offset of its first page
    size: int  # bytes of all its pages
    values: int
    codec: str | None
    physical: str  # BYTE_ARRAY, INT64
    optional: bool  # a definition level per value (max 1: flat)
    nulls: bool  # statistics do not exclude empty values


def columns_of(meta: pq.FileMetaData, group: int, names: list[str]) -> list[Column]:
    """The named columns of a row group, or Unsupported when one cannot be read here."""
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    out = []
    row_group = meta.row_group(group)
    for name in names:
        if name not in index:
            raise Unsupported(f"column {name} is nested or missing")
        i = index[name]
        field = meta.schema.column(i)
        chunk = row_group.column(i)
        if field.max_repetition_level or field.max_definition_level > 1:
            raise Unsupported(f"column {name} is nested")
        if chunk.compression not in CODECS:
            raise Unsupported(f"column {name}: compression {chunk.compression}")
        if not set(chunk.encodings) <= ENCODINGS:
            raise Unsupported(f"column {name}: encodings {chunk.encodings}")
        if chunk.physical_type not in ("BYTE_ARRAY", "INT64"):
            raise Unsupported(f"column {name}: type {chunk.physical_type}")
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and 0 < chunk.dictionary_page_offset < start:
            start = chunk.dictionary_page_offset
        stats = chunk.statistics
        nulls = stats is None or not stats.has_null_count or stats.null_count > 0
        out.append(Column(name, start, chunk.total_compressed_size, chunk.num_values,
                          CODECS[chunk.compression], chunk.physical_type, field.max_definition_level == 1, nulls))
    return out


@dataclass
class Page:
    dictionary: bool
    values: int  # values in the page, empty ones included
    encoding: int
    body: np.ndarray  # uint8, read-only: the values (v1: after the levels), decompressed
    defined: np.ndarray | None  # int32 0/1 per value of a page that may hold empty ones


def pages(path: Path, column: Column) -> Iterator[Page]:
    """The column chunk's pages, decompressed (index pages skipped); Unsupported for a header
    that does not parse or a page that does not decompress."""
    try:
        yield from _pages(path, column)
    except (IndexError, KeyError, TypeError, ValueError, OSError, pa.ArrowException) as exc:
        raise _corrupt(path, column, f"a page does not read ({type(exc).__name__}: {exc})") from None


def _pages(path: Path, column: Column) -> Iterator[Page]:
    with open(path, "rb") as f:
        f.seek(column.start)
        raw = f.read(column.size)
    if len(raw) != column.size:
        raise _corrupt(path, column, "the file ends inside the column")
    codec = pa.Codec(column.codec) if column.codec else None
    view = memoryview(raw)
    pos = seen = 0
    while pos < len(raw) and seen < column.values:
        header, pos = _struct(view, pos)
        kind, size, stored = header.get(1), header.get(2), header.get(3)
        if not isinstance(size, int) or not isinstance(stored, int) or pos + stored > len(raw):
            raise _corrupt(path, column, "a page header does not fit")
        body = view[pos:pos + stored]
        pos += stored
        if kind == DICTIONARY_PAGE:
            head = header[7]
            yield Page(True, head[1], head.get(2, PLAIN), _bytes(_inflate(codec, body, size)), None)
        elif kind == DATA_PAGE:
            head = header[5]
            data = _bytes(_inflate(codec, body, size))
            defined, at = None, 0
            if column.optional:  # v1: the levels, length-prefixed, inside the compressed data
                length = int.from_bytes(data[:4].tobytes(), "little")
                defined = _levels(data, 4, 4 + length, head[1], path, column) if column.nulls else None
                at = 4 + length
            seen += head[1]
            yield Page(False, head[1], head[2], data[at:], defined)
        elif kind == DATA_PAGE_V2:
            head = header[8]
            levels = head[5] + head[6]
            values = body[levels:]
            compressed = head.get(7, True)
            data = _bytes(_inflate(codec if compressed else None, values, size - levels))
            defined = None
            if column.optional and column.nulls and head[2]:
                defined = _levels(_bytes(body[:head[5]]), 0, head[5], head[1], path, column)
            seen += head[1]
            yield Page(False, head[1], head[4], data, defined)


def decode(pages: Iterable[Page], column: Column, path: Path, lut_of: Callable[[Page, int], np.ndarray],
           missing: int, dtype: np.dtype, out: np.ndarray | None = None) -> np.ndarray:
    """The column's values from its ``pages`` (into ``out`` when given): ``lut_of(page, n)``
    gives the ``n`` values of a dictionary page (each row's value is its entry's) or of a
    PLAIN data page (its non-empty values, in order); ``missing`` for an empty value."""
    if out is None:
        out = np.empty(column.values, dtype)
    elif out.shape != (column.values,) or out.dtype != dtype:
        raise ValueError(f"out: {column.values} values of {dtype} expected")
    lut = None
    row = 0
    for page in pages:
        if page.dictionary:
            if page.encoding not in (PLAIN, PLAIN_DICTIONARY):
                raise Unsupported(f"column {column.name}: dictionary encoding {page.encoding}")
            lut = np.ascontiguousarray(lut_of(page, page.values), dtype)
            continue
        if row + page.values > column.values:
            raise _corrupt(path, column, "more values in the pages than in the footer")
        target = out[row:row + page.values]
        n = page.values if page.defined is None else int(page.defined.sum())
        into = target if page.defined is None else np.empty(n, dtype)
        if page.encoding in (PLAIN_DICTIONARY, RLE_DICTIONARY):
            if lut is None:
                raise _corrupt(path, column, "a dictionary-encoded page without a dictionary")
            body = page.body
            if n and (body.shape[0] < 1 or parquet_kernels.hybrid_lookup(
                    body, 1, body.shape[0], int(body[0]), n, lut, into) < 0):
                raise _corrupt(path, column, "a page's dictionary indices do not fit its dictionary")
        elif page.encoding == PLAIN:
            into[:] = lut_of(page, n)
        else:
            raise Unsupported(f"column {column.name}: encoding {page.encoding}")
        if page.defined is not None:
            parquet_kernels.spread(page.defined, into, target, dtype.type(missing))
        row += page.values
    if row != column.values:
        raise _corrupt(path, column, f"{row} values in the pages, {column.values} in the footer")
    return out


ASCII = 0x8080808080808080  # no byte of ``plain_views``' or'ed inline bytes has this bit: ASCII


def text_views(path: Path, column: Column, page: Page, n: int) -> tuple[np.ndarray, int, bool]:
    """The first ``n`` PLAIN text values of a page as Arrow string views into its body ((n, 2)
    uint64), the longest one's length, and whether every one is inline and ASCII (then valid
    UTF-8 with no look at their bytes again)."""
    views = np.empty((n, 2), np.uint64)
    end, longest, high = parquet_kernels.plain_views(page.body, 0, page.body.shape[0], n, views)
    if end < 0:
        raise _corrupt(path, column, "text values run past their page")
    views.setflags(write=False)  # as views exported from Arrow are: one signature for the kernels
    return views, int(longest), longest <= INLINE and not int(high) & ASCII


def int64_values(path: Path, column: Column, page: Page, n: int) -> np.ndarray:
    """The first ``n`` PLAIN 64-bit integers of a page."""
    if page.body.shape[0] < 8 * n:
        raise _corrupt(path, column, "integers run past their page")
    return page.body[:8 * n].copy().view(np.int64)  # a copy: aligned


def _levels(data: np.ndarray, start: int, end: int, n: int, path: Path, column: Column) -> np.ndarray:
    """Definition levels (0: empty, 1: a value) of a flat optional column."""
    out = np.empty(n, np.int32)
    if parquet_kernels.hybrid_lookup(data, start, end, 1, n, np.array([0, 1], np.int32), out) < 0:
        raise _corrupt(path, column, "its definition levels do not fit the page")
    return out


def _inflate(codec: pa.Codec | None, body: memoryview, size: int) -> memoryview | pa.Buffer:
    return body if codec is None else codec.decompress(body, decompressed_size=size)


def _bytes(data: memoryview | pa.Buffer) -> np.ndarray:
    out = np.frombuffer(data, np.uint8)
    out.setflags(write=False)  # as Arrow's own buffers are: one signature for the kernels
    return out


def _corrupt(path: Path, column: Column, why: str) -> Unsupported:
    """A page that does not hold what the footer or its header says: Polars reads the file
    instead, and reports the damage as it does for any file."""
    return Unsupported(f"{path}: column {column.name}: {why}")


# --- Thrift compact protocol (the page headers) -----------------------------------------------

def _varint(b: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        x = b[i]
        i += 1
        value |= (x & 0x7F) << shift
        if x < 0x80:
            return value, i
        shift += 7


def _struct(b: memoryview, i: int) -> tuple[dict[int, object], int]:
    out: dict[int, object] = {}
    last = 0
    while True:
        head = b[i]
        i += 1
        if head == 0:
            return out, i
        kind, delta = head & 0x0F, head >> 4
        if delta:
            field = last + delta
        else:
            raw, i = _varint(b, i)
            field = (raw >> 1) ^ -(raw & 1)
        last = field
        out[field], i = _value(b, i, kind)


def _value(b: memoryview, i: int, kind: int) -> tuple[object, int]:
    if kind in (1, 2):
        return kind == 1, i
    if kind == 3:
        return b[i], i + 1
    if kind in (4, 5, 6):
        raw, i = _varint(b, i)
        return (raw >> 1) ^ -(raw & 1), i
    if kind == 7:
        return None, i + 8
    if kind == 8:
        n, i = _varint(b, i)
        return None, i + n
    if kind in (9, 10):
        head = b[i]
        i += 1
        n, element = head >> 4, head & 0x0F
        if n == 15:
            n, i = _varint(b, i)
        for _ in range(n):
            if element in (1, 2):
                i += 1
            else:
                _, i = _value(b, i, element)
        return None, i
    if kind == 11:
        n, i = _varint(b, i)
        if n:
            types = b[i]
            i += 1
            for _ in range(n):
                _, i = _value(b, i, types >> 4)
                _, i = _value(b, i, types & 0x0F)
        return None, i
    if kind == 12:
        return _struct(b, i)
    raise Unsupported(f"a page header holds Thrift type {kind}")
