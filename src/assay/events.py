"""Reading events: files or frames in, one canonical, validated Polars frame out.

Canonical columns (SPEC): event_id, entity, ts, item, amount, quantity,
counterparty; every other column is kept as an attribute. ``ts`` becomes
``Datetime(us, UTC)``; ``_file`` and ``_row`` keep each row's provenance so
that a bad value found later (a non-numeric ``sum`` column, say) can still be
reported by file and row.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .errors import InputError, UsageError

REQUIRED = ("event_id", "entity", "ts")
TEXT_COLUMNS = ("event_id", "entity", "item", "counterparty")
NUMERIC_DEFAULTS = {"amount": 0.0, "quantity": 1.0}
CANONICAL = ("event_id", "entity", "ts", "item", "amount", "quantity", "counterparty")
PROVENANCE = ("_file", "_row")
# rows read by the Parquet fast path carry no ``_row``: their number in the file is ``_seq``
# minus this (one value per file, a scalar column): 80-120 MB fewer to write in a 10 M-row run
ROW_BASE = "_row_base"
TS_DTYPE = pl.Datetime("us", "UTC")
# Epoch numbers at or above this magnitude are milliseconds (1e11 s is the year 5138).
EPOCH_MS_FROM = 1e11

_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)


@dataclass
class ReadResult:
    """Rows that passed validation, and those rejected with a reason."""

    events: pl.DataFrame
    rejects: pl.DataFrame = field(default_factory=lambda: empty_rejects())
    files: list[str] = field(default_factory=list)


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema={"file": pl.String, "row": pl.Int64, "column": pl.String,
                                "value": pl.String, "reason": pl.String})


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema={"event_id": pl.String, "entity": pl.String, "ts": TS_DTYPE,
                                "item": pl.String, "amount": pl.Float64, "quantity": pl.Float64,
                                "counterparty": pl.String, "_file": pl.String, "_row": pl.Int64})


def parse_timestamp_literal(text: str) -> object:
    """One timestamp written by a user (in a ``where``), as a timezone-aware datetime."""
    parsed = _parse_ts_strings(pl.Series([text]))
    value = parsed[0]
    if value is None:
        raise ValueError(f"cannot read {text!r} as a timestamp")
    return value


def _parse_ts_strings(s: pl.Series) -> pl.Series:
    text = s.str.strip_chars()
    norm = (
        text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T")
        .str.replace(r"(?i)z$", "+00:00")
        .str.replace(r"\s+([+-]\d{2}:?\d{2})$", "${1}")
    )
    frame = pl.DataFrame({"t": norm})
    candidates = [pl.col("t").str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
                  for f in _ISO_FORMATS]
    numeric = pl.col("t").str.replace(r"^\+", "").cast(pl.Float64, strict=False)
    epoch = _epoch_to_datetime(numeric)
    return frame.select(pl.coalesce([*candidates, epoch]).alias(s.name))[s.name]


def _epoch_to_datetime(numeric: pl.Expr) -> pl.Expr:
    us = (
        pl.when(numeric.abs() >= EPOCH_MS_FROM).then(numeric * 1_000).otherwise(numeric * 1_000_000)
    )
    return us.round(0).cast(pl.Int64, strict=False).cast(TS_DTYPE)


def _to_timestamp(s: pl.Series) -> pl.Series:
    dtype = s.dtype
    if isinstance(dtype, pl.Datetime):
        out = s.dt.cast_time_unit("us")
        return out.dt.replace_time_zone("UTC") if dtype.time_zone is None else \
            out.dt.convert_time_zone("UTC")
    if dtype == pl.Date:
        return s.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        return pl.DataFrame({"t": s.cast(pl.Float64)}).select(
            _epoch_to_datetime(pl.col("t")).alias(s.name))[s.name]
    return _parse_ts_strings(s.cast(pl.String))


def _read_file(path: Path, wanted: set[str] | None = None) -> pl.DataFrame:
    """Read one file; with ``wanted``, only those of its columns (projection)."""
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
            sep = "\t" if ".tsv" in name else ","
            source: object = path
            if name.endswith(".gz"):
                with gzip.open(path, "rb") as fh:
                    source = io.BytesIO(fh.read())
            header = pl.read_csv(source, separator=sep, infer_schema=False, n_rows=0).columns
            if isinstance(source, io.BytesIO):
                source.seek(0)
            columns = [c for c in header if wanted is None or c in wanted]
            return pl.read_csv(source, separator=sep, infer_schema=False, columns=columns or None)
        if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
            frame = _read_jsonl(path)
            return frame.select([c for c in frame.columns if wanted is None or c in wanted])
        if name.endswith((".parquet", ".pq")):
            schema = pl.read_parquet_schema(path)
            columns = [c for c in schema if wanted is None or c in wanted]
            return pl.read_parquet(path, columns=columns)
    except pl.exceptions.NoDataError:
        return pl.DataFrame()
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None
    raise UsageError(f"{path}: unknown file type; use .csv, .csv.gz, .jsonl, .jsonl.gz or .parquet")


# what Polars raises for a file it cannot read (a damaged one, or one cut short): its
# reader's checks, and the panics of the checks it does not make (``PanicException`` is a
# BaseException, not an Exception)
READ_ERRORS = (pl.exceptions.ComputeError, OSError, pl.exceptions.PanicException)


def unreadable(path: str | Path, exc: Exception) -> InputError:
    """The one-line error for a file Polars cannot read."""
    return InputError(str(path), None, "-", "-", f"cannot read the file: {exc}")


def _read_jsonl(path: Path) -> pl.DataFrame:
    opener: Callable[..., object] = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        lines = fh.read().splitlines()  # type: ignore[attr-defined]
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), number, "-", line[:80], f"not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise InputError(str(path), number, "-", line[:80], "each line must be a JSON object")
        records.append(record)
    if not records:
        return pl.DataFrame()
    columns: dict[str, list[object]] = {}
    for i, record in enumerate(records):
        for key in record:
            if key not in columns:
                columns[key] = [None] * i
        for key, values in columns.items():
            values.append(record.get(key))
    series = {}
    for key, values in columns.items():
        try:
            series[key] = pl.Series(key, values, strict=True)
        except (TypeError, pl.exceptions.PolarsError):
            # Mixed JSON types in one column: keep their text, typing happens below.
            series[key] = pl.Series(key, [None if v is None else (v if isinstance(v, str) else json.dumps(v))
                                         for v in values], dtype=pl.String)
    return pl.DataFrame(series)


def apply_mapping(frame: pl.DataFrame, mapping: Mapping[str, str], source: str) -> pl.DataFrame:
    """Rename source columns onto canonical names (``entity=CustomerID``)."""
    renames = {}
    for canonical, original in mapping.items():
        if original not in frame.columns:
            raise InputError(source, None, original, "-",
                             f"--map {canonical}={original}: the input has no column '{original}' "
                             f"(it has: {', '.join(frame.columns[:12])})")
        renames[original] = canonical
    clashing = [c for c in renames.values() if c in frame.columns and c not in renames]
    frame = frame.drop(clashing)
    return frame.rename(renames)


def normalize(frame: pl.DataFrame, source: str, *, skip_errors: bool,
              strip: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate and type one input. Returns (good rows, rejects).

    ``strip``: trim white space around text values (CSV); typed inputs (Parquet,
    frames) keep their strings as they are. Empty strings are empty values either way.
    """
    if "_row" not in frame.columns:
        frame = frame.with_row_index("_row", offset=1).with_columns(pl.col("_row").cast(pl.Int64))
    if "_file" not in frame.columns:
        frame = frame.with_columns(pl.lit(source, dtype=pl.String).alias("_file"))
    if "alert_id" in frame.columns:
        raise InputError(source, None, "alert_id", "-",
                         "this is an alert file, not events: alerts are never an input to scenarios "
                         "(purpose limitation, docs/purpose.md)")
    for col in REQUIRED:
        if col not in frame.columns:
            raise InputError(source, None, col, "-",
                             f"required column '{col}' is missing (columns: "
                             f"{', '.join(c for c in frame.columns if not c.startswith('_'))}); "
                             f"map one with --map {col}=NAME")
    problems: list[pl.DataFrame] = []
    out: dict[str, pl.Series] = {}
    for col in frame.columns:
        s = frame[col]
        if col in PROVENANCE:
            out[col] = s
        elif col == "ts":
            out[col] = _check(frame, col, _to_timestamp(s), problems,
                              "not a timestamp (ISO-8601, or epoch seconds or milliseconds)")
        elif col in NUMERIC_DEFAULTS:
            out[col] = _numeric(frame, col, problems).fill_null(NUMERIC_DEFAULTS[col])
        elif col in TEXT_COLUMNS:
            text = _text(s, strip)
            if col in ("event_id", "entity"):
                _flag(frame, col, text.is_null(), problems, "empty; this column is required")
            out[col] = text
        elif s.dtype == pl.String and strip:
            out[col] = _infer_attribute(s)
        elif s.dtype == pl.String:
            out[col] = _text(s, strip)
        else:
            out[col] = s
    for col, default in NUMERIC_DEFAULTS.items():
        if col not in out:
            out[col] = pl.repeat(default, frame.height, dtype=pl.Float64, eager=True).alias(col)
    for col in ("item", "counterparty"):
        if col not in out:
            out[col] = pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(col)
    typed = pl.DataFrame(out)
    rejects = pl.concat(problems) if problems else empty_rejects()
    if rejects.height:
        if not skip_errors:
            first = rejects.sort("row").row(0, named=True)
            raise InputError(first["file"], first["row"], first["column"], first["value"], first["reason"])
        rejects = rejects.sort("row").unique(subset=["file", "row"], keep="first", maintain_order=True)
        typed = typed.filter(~pl.col("_row").is_in(rejects["row"].implode()))
    ordered = [c for c in CANONICAL if c in typed.columns]
    rest = [c for c in typed.columns if c not in CANONICAL and c not in PROVENANCE]
    return typed.select([*ordered, *rest, *PROVENANCE]), rejects


def _text(s: pl.Series, strip: bool = True) -> pl.Series:
    text = s if s.dtype == pl.String else s.cast(pl.String)
    if strip:
        text = text.str.strip_chars()
    if not (text.str.len_bytes() == 0).any():
        return text
    return pl.select(pl.when(text.str.len_bytes() == 0).then(None).otherwise(text).alias(text.name)).to_series()


def _numeric(frame: pl.DataFrame, col: str, problems: list[pl.DataFrame]) -> pl.Series:
    s = frame[col]
    if s.dtype.is_numeric():
        return s.cast(pl.Float64)
    text = _text(s)
    value = text.cast(pl.Float64, strict=False)
    _flag(frame, col, text.is_not_null() & value.is_null(), problems, "not a number")
    return value


def _check(frame: pl.DataFrame, col: str, parsed: pl.Series, problems: list[pl.DataFrame],
           reason: str) -> pl.Series:
    raw = frame[col]
    empty = raw.is_null() if raw.dtype != pl.String else _text(raw).is_null()
    _flag(frame, col, empty, problems, "empty; this column is required")
    _flag(frame, col, ~empty & parsed.is_null(), problems, reason)
    return parsed


def _flag(frame: pl.DataFrame, col: str, bad: pl.Series, problems: list[pl.DataFrame], reason: str) -> None:
    if not bad.any():
        return
    rows = frame.filter(bad)
    problems.append(pl.DataFrame({
        "file": rows["_file"].cast(pl.String),
        "row": rows["_row"].cast(pl.Int64),
        "column": pl.Series([col] * rows.height, dtype=pl.String),
        "value": rows[col].cast(pl.String),
        "reason": pl.Series([reason] * rows.height, dtype=pl.String),
    }))


def _infer_attribute(s: pl.Series) -> pl.Series:
    """Text columns from CSV become numbers when every non-empty value is one."""
    text = _text(s)
    present = text.is_not_null().sum()
    for dtype in (pl.Int64, pl.Float64):
        cast = text.cast(dtype, strict=False)
        if present and cast.is_not_null().sum() == present:
            return cast
    return text


def read_events(
    sources: str | Path | Sequence[str | Path] | object,
    *,
    mapping: Mapping[str, str] | None = None,
    skip_errors: bool = False,
    on_file: Callable[[str, int], None] | None = None,
    columns: set[str] | None = None,
) -> ReadResult:
    """Read paths or an in-memory frame (Polars, pandas, Arrow) into canonical events.

    ``columns``: the canonical columns a run needs (files are read with projection);
    the required ones are always read.
    """
    mapping = dict(mapping or {})
    wanted = None
    if columns is not None:
        wanted = {mapping.get(c, c) for c in set(columns) | set(REQUIRED)} | set(mapping.values())
        wanted.add("alert_id")  # so that an alert file is recognised and refused
    frames: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    names: list[str] = []
    for name, raw, text_format in _iter_sources(sources, wanted):
        raw = apply_mapping(raw, mapping, name) if mapping else raw
        if raw.width == 0:
            names.append(name)
            continue
        good, bad = normalize(raw, name, skip_errors=skip_errors, strip=text_format)
        frames.append(good)
        rejects.append(bad)
        names.append(name)
        if on_file:
            on_file(name, raw.height)
    if not frames:
        frames.append(empty_events())
    events = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    all_rejects = pl.concat(rejects) if rejects else empty_rejects()
    return ReadResult(events, all_rejects, names)


def _iter_sources(sources: object, wanted: set[str] | None) -> Iterable[tuple[str, pl.DataFrame, bool]]:
    """(name, frame, is a text format) for each source."""
    if isinstance(sources, str | Path):
        sources = [sources]
    if isinstance(sources, pl.DataFrame):
        yield "<dataframe>", sources, False
        return
    if isinstance(sources, pl.LazyFrame):
        yield "<dataframe>", sources.collect(), False
        return
    module = type(sources).__module__.split(".")[0]
    if module == "pyarrow":
        yield "<arrow table>", pl.DataFrame(pl.from_arrow(sources)), False
        return
    if module == "pandas":
        yield "<dataframe>", pl.from_pandas(sources), False  # type: ignore[arg-type]
        return
    if not isinstance(sources, Iterable):
        raise UsageError(f"cannot read events from a {type(sources).__name__}")
    for item in sources:
        path = Path(item)  # type: ignore[arg-type]
        if not path.exists():
            raise UsageError(f"{path}: no such file")
        text_format = not path.name.lower().endswith((".parquet", ".pq"))
        yield str(path), _read_file(path, wanted), text_format


def row_number(row: Mapping[str, object]) -> int | None:
    """A row's number in its file (from 1): ``_row``, or from ``_seq`` and ``_row_base``."""
    if row.get("_row") is not None:
        return int(row["_row"])  # type: ignore[call-overload]
    if row.get("_seq") is not None and row.get(ROW_BASE) is not None:
        return int(row["_seq"]) - int(row[ROW_BASE])  # type: ignore[call-overload]
    return None
