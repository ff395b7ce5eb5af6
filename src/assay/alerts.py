"""Alerts: deterministic ids, the alert frame, and writing it out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl

from .errors import UsageError

ALERT_SCHEMA = {
    "alert_id": pl.String,
    "purpose": pl.String,
    "scenario": pl.String,
    "scenario_version": pl.Int64,
    "key": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "trigger_event_id": pl.String,
    "value": pl.Float64,
    "threshold": pl.Float64,
    "severity": pl.String,
    "evidence": pl.List(pl.String),
    "evidence_truncated": pl.Boolean,
}
OUTPUT_FORMATS = (".jsonl", ".csv", ".parquet")


_SEPARATOR = "\x1f"


def alert_id(purpose: str, scenario: str, version: int, key: str, event_id: str, position: int) -> str:
    """SPEC: a hash of purpose, scenario id and version, key, trigger event id and row position."""
    text = _SEPARATOR.join([purpose, scenario, str(version), key, event_id, str(position)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def alert_ids(purpose: str, scenario: pl.Series, version: pl.Series, key: pl.Series, event_id: pl.Series,
              position: pl.Series) -> pl.Series:
    """``alert_id`` of many alerts: the texts joined by Polars, only the hashing in Python
    (65,000 alerts: 0.17 -> 0.06 s)."""
    texts = pl.select(pl.concat_str([pl.lit(purpose), scenario, version.cast(pl.String), key, event_id,
                                     position.cast(pl.String)], separator=_SEPARATOR)).to_series()
    sha256 = hashlib.sha256
    return pl.Series("alert_id", [sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts.to_list()],
                     dtype=pl.String)


def empty_alerts() -> pl.DataFrame:
    return pl.DataFrame(schema=ALERT_SCHEMA)


def write_alerts(alerts: pl.DataFrame, path: str | Path) -> None:
    path = Path(path)
    name = path.name.lower()
    if not name.endswith(OUTPUT_FORMATS):
        raise UsageError(f"{path}: unknown output type; use {', '.join(OUTPUT_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        alerts.write_parquet(path)
        return
    if name.endswith(".csv"):
        flat = alerts.with_columns(
            pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"),
            pl.col("evidence").map_elements(lambda v: json.dumps(list(v)), return_dtype=pl.String),
        )
        flat.write_csv(path)
        return
    with path.open("w", encoding="utf-8") as fh:
        for record in alerts.iter_rows(named=True):
            record["ts"] = format_ts(record["ts"])
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def alert_json_lines(alerts: pl.DataFrame) -> list[str]:
    """One JSON object per alert, encoded for the whole frame at once (a stream publishes many).

    ``ts`` is written as ``format_ts`` writes it: ISO-8601 UTC with ``Z``, fractions only when nonzero.
    """
    if alerts.height == 0:
        return []
    ts = pl.col("ts")
    text = alerts.with_columns(
        pl.when(ts.dt.microsecond() == 0).then(ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        .otherwise(ts.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).alias("ts")).write_ndjson()
    return text.rstrip("\n").split("\n")  # JSON escapes a newline inside a string, so lines are alerts


def format_ts(value: object) -> str:
    text = value.isoformat()  # type: ignore[attr-defined]
    return text.replace("+00:00", "Z")


def read_alerts(path: str | Path) -> pl.DataFrame:
    """Read alerts written by ``write_alerts`` (any of its formats)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    if path.suffix == ".csv":
        frame = pl.read_csv(path, schema_overrides={"key": pl.String, "trigger_event_id": pl.String})
        return frame.with_columns(
            pl.col("ts").str.to_datetime(time_zone="UTC", time_unit="us"),
            pl.col("evidence").str.json_decode(pl.List(pl.String)))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return empty_alerts()
    frame = pl.DataFrame(rows, schema_overrides={k: v for k, v in ALERT_SCHEMA.items() if k != "ts"})
    return frame.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC", time_unit="us"))
