"""Parquet pages decoded here give exactly what Polars reads, for the files writers make."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay import parquet_kernels as pk
from assay import parquet_pages as pp

# --- the kernels, against a plain encoder ----------------------------------------------------

def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def hybrid_encode(runs: list[tuple[str, list[int]]], width: int) -> bytes:
    """The RLE / bit-packed hybrid of the Parquet spec: ('rle', [v] * k) or ('packed', values)
    (padded to a multiple of eight values)."""
    out = bytearray()
    for kind, values in runs:
        if kind == "rle":
            out += _uleb(len(values) << 1) + values[0].to_bytes((width + 7) // 8, "little")
        else:
            padded = values + [0] * (-len(values) % 8)
            acc = bits = 0
            packed = bytearray()
            for v in padded:
                acc |= v << bits
                bits += width
                while bits >= 8:
                    packed.append(acc & 0xFF)
                    acc >>= 8
                    bits -= 8
            if bits:
                packed.append(acc & 0xFF)
            out += _uleb((len(padded) // 8) << 1 | 1) + packed
    return bytes(out)


@st.composite
def hybrid_runs(draw):
    width = draw(st.integers(0, 32))
    # values index a dictionary (an array here): wide fields hold values up to a million
    value = st.integers(0, min((1 << width) - 1, (1 << 20) - 1))
    runs = []
    count = draw(st.integers(0, 6))
    for k in range(count):
        if draw(st.booleans()):
            runs.append(("rle", [draw(value)] * draw(st.integers(1, 40))))
        else:  # only the last run may be padded: the others hold whole groups of eight
            size = draw(st.integers(1, 40) if k == count - 1 else st.integers(1, 5).map(lambda g: 8 * g))
            runs.append(("packed", [draw(value) for _ in range(size)]))
    return width, runs


def _readonly(data: bytes) -> np.ndarray:
    out = np.frombuffer(data, np.uint8)
    out.setflags(write=False)
    return out


@given(case=hybrid_runs())
@settings(max_examples=300, deadline=None)
def test_hybrid_decoding_equals_the_encoded_values(case):
    width, runs = case
    values = [v for _, vs in runs for v in vs]
    data = _readonly(hybrid_encode(runs, width))
    top = max(values, default=0)
    lut = np.arange(top + 1, dtype=np.int64) * 3  # each index looked up in a dictionary
    out = np.full(len(values), -7, np.int64)
    end = pk.hybrid_lookup(data, 0, data.shape[0], width, len(values), lut, out)
    assert end == data.shape[0]
    assert out.tolist() == [v * 3 for v in values]
    if values:  # an index past the dictionary, or data that ends early, is refused
        assert pk.hybrid_lookup(data, 0, data.shape[0], width, len(values), lut[:top], out) == pk.BAD
        assert pk.hybrid_lookup(data, 0, data.shape[0] - 1, width, len(values), lut, out) == pk.BAD


@given(texts=st.lists(st.text(max_size=20) | st.binary(max_size=20).map(lambda b: b.hex()), max_size=30))
@settings(max_examples=200, deadline=None)
def test_plain_views_read_back_as_the_same_texts(texts):
    encoded = [t.encode() for t in texts]
    data = _readonly(b"".join(len(e).to_bytes(4, "little") + e for e in encoded))
    views = np.zeros((len(texts), 2), np.uint64)
    end, longest, high = pk.plain_views(data, 0, data.shape[0], len(texts), views)
    assert end == data.shape[0] and longest == max((len(e) for e in encoded), default=0)
    # the inline strings' bytes or'ed: no high bit exactly when they are ASCII
    assert (int(high) & pp.ASCII == 0) == all(e.isascii() for e in encoded if len(e) <= pk.INLINE)
    arr = pa.Array.from_buffers(pa.string_view(), len(texts), [None, pa.py_buffer(views), pa.py_buffer(data)])
    arr.validate(full=True)
    assert arr.to_pylist() == texts
    if texts and encoded[-1]:
        assert pk.plain_views(data, 0, data.shape[0] - 1, len(texts), views)[0] == pk.BAD


# --- whole columns, against Polars ---------------------------------------------------------------

def frame(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    short = [f"c{i}" for i in range(40)]
    long = [f"customer-with-a-long-name-{i}-ü" for i in range(25)]
    names = np.array(short + long + ["", "日本語のテキスト"], dtype=object)
    text = names[rng.integers(0, len(names), rows)]
    nulls = rng.random(rows) < 0.1
    return pl.DataFrame({
        "entity": pl.Series(text.tolist(), dtype=pl.String),
        "item": pl.Series([None if n else t for t, n in zip(text[::-1].tolist(), nulls, strict=True)], dtype=pl.String),
        "ts": pl.Series(rng.integers(-10**15, 10**15, rows)).cast(pl.Datetime("us", "UTC")),
        "ts_ms": pl.Series(rng.integers(-10**12, 10**12, rows)).cast(pl.Datetime("ms")),
        "ts_ns": pl.Series(rng.integers(-10**18, 10**18, rows)).cast(pl.Datetime("ns", "UTC")),
    })


def _polars(path: Path, **options):
    def write(df: pl.DataFrame) -> None:
        df.write_parquet(path, **options)
    return write


def _pyarrow(path: Path, **options):
    def write(df: pl.DataFrame) -> None:
        pq.write_table(df.to_arrow(), path, **options)
    return write


def _duckdb(path: Path, options: str):
    def write(df: pl.DataFrame) -> None:
        con = duckdb.connect()
        con.register("df", df.to_arrow())
        con.execute(f"COPY df TO '{path}' (FORMAT parquet{options})")
    return write


WRITERS = {
    "polars-zstd": lambda p: _polars(p, compression="zstd", row_group_size=700, data_page_size=512),
    "polars-snappy": lambda p: _polars(p, compression="snappy", row_group_size=2000),
    "polars-gzip": lambda p: _polars(p, compression="gzip"),
    "polars-brotli": lambda p: _polars(p, compression="brotli"),
    "polars-none": lambda p: _polars(p, compression="uncompressed", data_page_size=256),
    "pyarrow-v1": lambda p: _pyarrow(p, compression="zstd", row_group_size=900, data_page_size=300),
    "pyarrow-v2": lambda p: _pyarrow(p, data_page_version="2.0", compression="snappy", data_page_size=300),
    "pyarrow-v2-none": lambda p: _pyarrow(p, data_page_version="2.0", compression="none"),
    "pyarrow-plain": lambda p: _pyarrow(p, use_dictionary=False, compression="zstd", data_page_size=400),
    # a dictionary over its size limit: the writer goes on with PLAIN pages in the same chunk
    "pyarrow-dictionary-full": lambda p: _pyarrow(p, dictionary_pagesize_limit=64, data_page_size=200),
    "pyarrow-no-statistics": lambda p: _pyarrow(p, write_statistics=False, row_group_size=1000),
    "duckdb": lambda p: _duckdb(p, ""),
    "duckdb-zstd": lambda p: _duckdb(p, ", COMPRESSION zstd, ROW_GROUP_SIZE 2048"),
}


def decode_text(path: Path, column: pp.Column) -> list[str | None]:
    """A text column decoded here, each value as text (through a dictionary of texts)."""
    texts: list[str] = []

    def lut(page: pp.Page, n: int) -> np.ndarray:
        views, _, _ = pp.text_views(path, column, page, n)
        arr = pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(views), pa.py_buffer(page.body)])
        start = len(texts)
        texts.extend(arr.to_pylist())
        return np.arange(start, start + n, dtype=np.int64)

    codes = pp.decode(pp.pages(path, column), column, path, lut, -1, np.dtype(np.int64))
    return [None if c < 0 else texts[c] for c in codes.tolist()]


def decode_ints(path: Path, column: pp.Column) -> list[int | None]:
    values = pp.decode(list(pp.pages(path, column)), column, path,
                       lambda page, n: pp.int64_values(path, column, page, n), -1, np.dtype(np.int64))
    return values.tolist()


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_columns_decode_as_polars_reads_them(tmp_path, writer):
    path = tmp_path / "e.parquet"
    df = frame(5000, seed=len(writer))
    WRITERS[writer](path)(df)
    back = pl.read_parquet(path)
    meta = pq.ParquetFile(path).metadata
    names = ["entity", "item", "ts", "ts_ms", "ts_ns"]
    start = 0
    for g in range(meta.num_row_groups):
        columns = {c.name: c for c in pp.columns_of(meta, g, names)}
        rows = meta.row_group(g).num_rows
        part = back.slice(start, rows)
        for name in ("entity", "item"):
            assert decode_text(path, columns[name]) == part[name].to_list(), name
        for name in ("ts", "ts_ms", "ts_ns"):
            assert decode_ints(path, columns[name]) == part[name].to_physical().to_list(), name
        start += rows
    assert start == df.height


def test_what_is_not_read_here_is_refused_before_decoding(tmp_path):
    df = frame(100, seed=1)
    delta = tmp_path / "delta.parquet"
    pq.write_table(df.to_arrow(), delta, use_dictionary=False, column_encoding={"ts": "DELTA_BINARY_PACKED"})
    with pytest.raises(pp.Unsupported, match="encodings"):
        pp.columns_of(pq.ParquetFile(delta).metadata, 0, ["ts"])
    int96 = tmp_path / "int96.parquet"
    pq.write_table(df.to_arrow(), int96, use_deprecated_int96_timestamps=True)
    with pytest.raises(pp.Unsupported, match="type INT96"):
        pp.columns_of(pq.ParquetFile(int96).metadata, 0, ["ts"])
    lz4 = tmp_path / "lz4.parquet"  # Parquet's deprecated LZ4 codec (Hadoop's framing)
    df.write_parquet(lz4, compression="lz4")
    with pytest.raises(pp.Unsupported, match="compression LZ4"):
        pp.columns_of(pq.ParquetFile(lz4).metadata, 0, ["ts"])
    nested = tmp_path / "nested.parquet"
    df.select(pl.struct("entity", "item").alias("s")).write_parquet(nested)
    with pytest.raises(pp.Unsupported):
        pp.columns_of(pq.ParquetFile(nested).metadata, 0, ["s"])


def test_a_file_cut_inside_a_column_is_refused(tmp_path):
    path = tmp_path / "e.parquet"
    frame(2000, seed=3).write_parquet(path, compression="uncompressed")
    column = pp.columns_of(pq.ParquetFile(path).metadata, 0, ["entity"])[0]
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(path.read_bytes()[:column.start + column.size // 2])
    with pytest.raises(pp.Unsupported, match="ends inside"):
        decode_text(cut, column)
