"""Alerts: ids of many at once equal ids of one at a time; every output format reads back as written."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.alerts import (
    ALERT_SCHEMA,
    OUTPUT_FORMATS,
    alert_id,
    alert_ids,
    alert_json_lines,
    read_alerts,
    sha256_prefixes,
    write_alerts,
)

TEXT = st.text(max_size=12)  # any unicode, the separator \x1f included


@settings(max_examples=100, deadline=None)
@given(purpose=TEXT, rows=st.lists(st.tuples(TEXT, st.integers(1, 10**6), TEXT, TEXT, st.integers(0, 10**6)),
                                   max_size=20))
def test_alert_ids_of_many_equal_alert_id_of_each(purpose, rows):
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
    got = alert_ids(purpose, pl.Series(columns[0], dtype=pl.String), pl.Series(columns[1], dtype=pl.Int64),
                    pl.Series(columns[2], dtype=pl.String), pl.Series(columns[3], dtype=pl.String),
                    pl.Series(columns[4], dtype=pl.Int64))
    assert got.to_list() == [alert_id(purpose, *row) for row in rows]


ALERT = st.fixed_dictionaries({
    "alert_id": st.text(min_size=1, max_size=8),
    "purpose": TEXT, "scenario": TEXT, "scenario_version": st.integers(1, 10**6), "key": TEXT,
    "ts": st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    "trigger_event_id": TEXT,
    "value": st.floats(-1e12, 1e12), "threshold": st.floats(-1e12, 1e12), "severity": TEXT,
    "evidence": st.lists(TEXT, max_size=4), "evidence_truncated": st.booleans(),
})


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ALERT, max_size=6), suffix=st.sampled_from(OUTPUT_FORMATS))
def test_every_output_format_reads_back_as_written(rows, suffix, tmp_path_factory):
    """Texts with quotes, commas, newlines and any unicode, empty evidence, sub-second times."""
    alerts = pl.DataFrame(rows, schema={**ALERT_SCHEMA, "ts": pl.Datetime("us")}) \
        .with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    path = tmp_path_factory.mktemp("out") / f"alerts{suffix}"
    write_alerts(alerts, path)
    back = read_alerts(path)
    if suffix == ".csv":  # CSV has no null and no empty text apart; the alert frame holds no nulls
        back = back.with_columns(pl.col(pl.String).fill_null(""))
    assert back.equals(alerts)


def test_jsonl_lines_are_the_stream_encoding(tmp_path):
    alerts = pl.DataFrame([{"alert_id": "a", "purpose": "fraud", "scenario": "s", "scenario_version": 1,
                            "key": "k\u00e9", "ts": datetime(2026, 1, 1, 0, 0, 0, 500),
                            "trigger_event_id": "e", "value": 2.0, "threshold": 2.0, "severity": "high",
                            "evidence": ["e"], "evidence_truncated": False}],
                          schema={**ALERT_SCHEMA, "ts": pl.Datetime("us")}) \
        .with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    write_alerts(alerts, tmp_path / "a.jsonl")
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == alert_json_lines(alerts)
    assert json.loads(lines[0])["ts"] == "2026-01-01T00:00:00.000500Z"


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.one_of(st.text(max_size=200), st.binary(max_size=3).map(lambda b: b.hex() * 40)),
                      max_size=30),
       parts=st.integers(1, 3))
def test_the_kernel_digest_is_sha256(texts, parts):
    """Texts of every length around the 55- and 64-byte block edges, any unicode."""
    got = sha256_prefixes(pl.Series(texts, dtype=pl.String), parts).to_list()
    assert got == [hashlib.sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts]


def test_block_edges_and_a_sliced_series():
    texts = ["x" * n for n in range(0, 200)]
    want = [hashlib.sha256(t.encode()).hexdigest()[:32] for t in texts]
    assert sha256_prefixes(pl.Series(texts)).to_list() == want
    assert sha256_prefixes(pl.Series(texts).slice(50, 100)).to_list() == want[50:150]


def test_many_alert_ids_take_the_kernel_and_equal_hashlib(monkeypatch):
    import assay.alerts as alerts

    n = 50
    cols = (pl.Series([f"s{i % 7}" for i in range(n)]), pl.Series(list(range(1, n + 1)), dtype=pl.Int64),
            pl.Series([f"k\u00e9{i}" for i in range(n)]), pl.Series([f"e{i}" for i in range(n)]),
            pl.Series([i % 3 for i in range(n)], dtype=pl.Int64))
    small = alert_ids("fraud", *cols)
    monkeypatch.setattr(alerts, "KERNEL_IDS", 1)
    assert alert_ids("fraud", *cols).to_list() == small.to_list()
