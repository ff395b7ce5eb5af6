"""From JetStream messages to rows the engine can use, and dead letters for the rest.

Normalizing costs a few milliseconds per call whatever the size, so a micro-batch's
messages with the same schema are normalized together (messages are often a few hundred
rows). A message whose rows cannot be read as a whole (a required column missing, a column
a scenario reads absent, a ``where`` comparing a column of another type) is dead-lettered
as one, decided message by message so that the outcome never depends on how messages were
grouped into micro-batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..alerts import format_ts
from ..engine import Engine
from ..errors import AssayError
from ..events import NUMERIC_DEFAULTS, REQUIRED, TEXT_COLUMNS, normalize
from .wire import FORMAT, decode

# columns the reader fills in when a message lacks them (amount, quantity, item, counterparty)
DEFAULTED = set(NUMERIC_DEFAULTS) | (set(TEXT_COLUMNS) - set(REQUIRED))


@dataclass
class Message:
    source: str  # subject#sequence: names the message in dead letters
    frame: pl.DataFrame


def read_message(data: bytes, headers: dict | None, source: str, key: str, needed: set[str],
                 dead: list[dict]) -> Message | None:
    """Decode one message; dead-letter it (and return None) when it cannot be read at all."""
    headers = headers or {}
    if headers.get("assay-format", FORMAT) != FORMAT:
        dead.append(dead_letter(f"unknown message format {headers.get('assay-format')!r}; expected {FORMAT}",
                                source=source, data=data))
        return None
    if headers.get("assay-key", key) != key:
        dead.append(dead_letter(f"the message was partitioned by '{headers['assay-key']}', this worker's "
                                f"scenarios are keyed by '{key}'", source=source))
        return None
    try:
        frame = decode(data)
    except Exception as exc:  # noqa: BLE001 - anything a broken payload raises is a dead letter
        dead.append(dead_letter(f"not an Arrow IPC batch: {type(exc).__name__}: {exc}", source=source, data=data))
        return None
    private = [c for c in frame.columns if c.startswith("_")]
    if private:
        frame = frame.drop(private)
    missing = sorted(c for c in needed - set(frame.columns) if c not in DEFAULTED)
    if missing:
        what = "required column" if set(missing) & set(REQUIRED) else "column the scenarios read"
        dead.append(dead_letter(f"{what} '{missing[0]}' is missing (columns: {', '.join(frame.columns)})",
                                source=source, rows=frame.height))
        return None
    return Message(source, frame)


def prepare(messages: list[Message], engine: Engine, dead: list[dict], *,
            keep_message: bool = False) -> pl.DataFrame | None:
    """Rows of ``messages`` in arrival order, validated and screened; bad rows to ``dead``.

    ``keep_message``: with ``_m``, the number of each row's message in ``messages``."""
    groups: dict[tuple, list[int]] = {}
    for i, m in enumerate(messages):
        groups.setdefault(tuple(m.frame.schema.items()), []).append(i)
    parts: list[pl.DataFrame] = []
    for members in groups.values():
        try:
            parts.append(_prepare_group([messages[i] for i in members], members, engine, dead))
        except AssayError:
            for i in members:  # decide message by message
                try:
                    parts.append(_prepare_group([messages[i]], [i], engine, dead))
                except AssayError as exc:
                    dead.append(dead_letter(str(exc), source=messages[i].source, rows=messages[i].frame.height))
    parts = [p for p in parts if p.height]
    if not parts:
        return None
    rows = pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]
    if len(groups) > 1:
        rows = rows.sort("_m", maintain_order=True)
    return rows if keep_message else rows.drop("_m")


def _prepare_group(messages: list[Message], numbers: list[int], engine: Engine, dead: list[dict]) -> pl.DataFrame:
    heights = np.array([m.frame.height for m in messages], np.int64)
    starts = np.cumsum(heights) - heights
    which = np.repeat(np.arange(len(messages)), heights)
    raw = pl.concat([m.frame for m in messages], rechunk=False) if len(messages) > 1 else messages[0].frame
    raw = raw.with_columns(
        pl.Series("_file", [m.source for m in messages], dtype=pl.String).gather(which),
        pl.Series("_row", np.arange(which.size, dtype=np.int64) - starts[which] + 1),
        pl.Series("_m", np.asarray(numbers, np.int64)[which]))
    good, bad = normalize(raw, "<stream>", skip_errors=True, strip=False)
    if bad.height:
        originals = raw.join(bad.select(pl.col("file").alias("_file"), pl.col("row").alias("_row"), "column",
                                        "reason"), on=["_file", "_row"], how="inner")
        for row in originals.iter_rows(named=True):
            reason = f"column '{row.pop('column')}': {row.pop('reason')}"
            dead.append(dead_letter(reason, row))
        good = good.join(bad.select(pl.col("file").alias("_file"), pl.col("row").alias("_row")),
                         on=["_file", "_row"], how="anti", maintain_order="left")
    good, unusable = engine.screen(good)
    for row in unusable.iter_rows(named=True):
        dead.append(dead_letter(row.pop("reason"), row))
    return good


def dead_letter(reason: str, row: dict | None = None, *, source: str | None = None, data: bytes | None = None,
                rows: int | None = None) -> dict:
    """A dead-letter record: why, where from, and the row (or the start of an unreadable payload)."""
    record: dict[str, object] = {"reason": reason}
    row_number = None
    if row is not None:
        row = dict(row)
        source = source or row.pop("_file", None)
        row_number = row.pop("_row", None)
        for private in [k for k in row if k.startswith("_")]:
            row.pop(private)
        record["event"] = {k: (format_ts(v) if hasattr(v, "isoformat") else v) for k, v in row.items()}
    if source is not None:
        record["source"] = source
    if row_number is not None:
        record["row"] = row_number
    if rows is not None:
        record["rows"] = rows
    if data is not None:
        record["payload_start"] = data[:200].decode("latin-1")
    return record
