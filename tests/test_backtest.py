from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest

import assay
from assay.backtest import backtest, compare, load_labels, parse_sweep, poisson_interval, sweep
from assay.cli import main
from assay.errors import InputError, UsageError

SCENARIOS = """
version: 1
purpose: fraud
scenarios:
  - {id: ab, kind: combination, items: [a, b], window: 1h}
  - {id: busy, kind: aggregate, metric: count, op: ">=", threshold: 3, window: 1h}
"""


def events() -> pl.DataFrame:
    rows = [
        # k1: a then b 30 min later -> ab alert at 00:30 (first relevant row 00:00)
        ("e1", "k1", "2024-01-01T00:00:00Z", "a"), ("e2", "k1", "2024-01-01T00:30:00Z", "b"),
        # k2: a, b, x within the hour -> ab and busy alerts
        ("e3", "k2", "2024-01-01T01:00:00Z", "a"), ("e4", "k2", "2024-01-01T01:10:00Z", "b"),
        ("e5", "k2", "2024-01-01T01:20:00Z", "x"),
        # k3: unlabeled, a and b -> ab alert
        ("e6", "k3", "2024-01-02T00:00:00Z", "b"), ("e7", "k3", "2024-01-02T00:01:00Z", "a"),
        # k4: positive, never alerts; k5: negative, quiet
        ("e8", "k4", "2024-01-31T00:00:00Z", "a"), ("e9", "k5", "2024-01-31T00:00:00Z", "x"),
    ]
    frame = pl.DataFrame(rows, schema=["event_id", "entity", "ts", "item"], orient="row")
    return assay.read_events(frame).events


def labels(extra: dict | None = None):
    data = {"key": ["k1", "k2", "k4", "k5"], "label": ["1", "0", "yes", "false"]}
    data.update(extra or {})
    return load_labels(pl.DataFrame(data))


def test_figures_per_scenario_and_overall():
    result = backtest(assay.load_scenarios(SCENARIOS), events(), labels())
    ab, busy = result.figures
    assert (ab.alerts, ab.alerted_keys, ab.true_positives, ab.false_positives, ab.false_negatives) == (3, 3, 1, 2, 1)
    assert ab.unlabeled_alerted_keys == 1
    assert ab.false_positive_keys == ["k2", "k3"] and ab.missed_keys == ["k4"]
    assert ab.precision == pytest.approx(1 / 3) and ab.recall == pytest.approx(1 / 2)
    assert ab.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert ab.median_hours_to_alert == pytest.approx(0.5)
    # 3 alerts over 5 keys over the data's 30 days
    months = (30 * 86400) / (30.4375 * 86400)
    assert ab.alerts_per_10k_keys_per_month == pytest.approx(3 / 5 * 10_000 / months)
    assert (busy.alerts, busy.true_positives, busy.false_positives) == (1, 0, 1)
    assert busy.precision == 0 and busy.recall == 0
    assert result.overall.alerted_keys == 3 and result.overall.true_positives == 1
    assert "1 alerted key(s) had no label" in result.notes[0] or "had no label" in result.notes[0]


def test_unlabeled_keys_can_be_left_out():
    result = backtest(assay.load_scenarios(SCENARIOS), events(), labels(), unlabeled="exclude")
    ab = result.figures[0]
    assert ab.false_positives == 1 and ab.precision == pytest.approx(1 / 2)


def test_population_projection_is_stated_plainly():
    result = backtest(assay.load_scenarios(SCENARIOS), events(), labels(), population=100_000_000)
    ab = result.figures[0]
    p = ab.projection
    months = 30 / 30.4375
    assert p["false_alerts_per_month"] == pytest.approx(2 / (5 * months) * 100_000_000)
    assert p["low"] < p["false_alerts_per_month"] < p["high"]
    from assay.backtest import projection_sentence

    assert projection_sentence(ab).startswith("At 100,000,000 keys, ab would raise about")


@pytest.mark.parametrize("count, low, high", [(0, 0.0, 3.69), (1, 0.0253, 5.57), (10, 4.80, 18.39),
                                              (100, 81.4, 121.6)])
def test_poisson_interval_matches_exact_values(count, low, high):
    lo, hi = poisson_interval(count)
    assert lo == pytest.approx(low, rel=0.01, abs=0.001) and hi == pytest.approx(high, rel=0.01)


def test_label_ts_gives_hours_after_label():
    lab = labels({"label_ts": ["2024-01-01T00:10:00Z", None, None, None]})
    result = backtest(assay.load_scenarios(SCENARIOS), events(), lab)
    assert result.figures[0].median_hours_after_label == pytest.approx(20 / 60)


@pytest.mark.parametrize("data, message", [
    ({"key": ["a"], "lbl": ["1"]}, "needs columns key,label"),
    ({"key": ["a", "b"], "label": ["1", "maybe"]}, "expected 1/0"),
    ({"key": ["a", "a"], "label": ["1", "0"]}, "labelled twice"),
])
def test_bad_labels_are_named(data, message):
    with pytest.raises(InputError, match=message):
        load_labels(pl.DataFrame(data))


def test_sweep_and_baseline():
    spec = assay.load_scenarios(SCENARIOS)
    swept = sweep(spec, events(), labels(), "busy:threshold=1:4:1")
    assert [p["value"] for p in swept["points"]] == [1.0, 2.0, 3.0, 4.0]
    assert [p["alerts"] for p in swept["points"]][-1] == 0
    windows = sweep(spec, events(), labels(), "ab:window=1m,1h,2d")
    assert [p["alerts"] for p in windows["points"]] == [1, 3, 3]
    with pytest.raises(UsageError, match="no scenario"):
        parse_sweep("nope:threshold=1:2:1", spec)
    with pytest.raises(UsageError, match="has no threshold"):
        parse_sweep("ab:threshold=1:2:1", spec)
    old = backtest(assay.load_scenarios(SCENARIOS.replace("threshold: 3", "threshold: 2")), events(), labels())
    new = backtest(spec, events(), labels())
    diff = compare(new, old)
    assert diff["alerts_disappear"] >= 1 or diff["alerts_appear"] >= 1
    busy = next(m for m in diff["scenarios"] if m["scenario"] == "busy")
    assert busy["figures"]["alerts"]["before"] >= busy["figures"]["alerts"]["after"]


def test_cli_writes_report_and_json(tmp_path, capsys):
    s = tmp_path / "s.yaml"
    s.write_text(SCENARIOS)
    e = tmp_path / "e.parquet"
    events().drop("_file", "_row").write_parquet(e)
    lab = tmp_path / "labels.csv"
    pl.DataFrame({"key": ["k1", "k2", "k4", "k5"], "label": [1, 0, 1, 0]}).write_csv(lab)
    report, out = tmp_path / "r.html", tmp_path / "r.json"
    assert main(["backtest", str(s), str(e), "--labels", str(lab), "--report", str(report), "--json", str(out),
                 "--population", "1000000", "--sweep", "busy:threshold=1:3:1", "--baseline", str(s)]) == 0
    figures = json.loads(out.read_text())
    assert [f["scenario"] for f in figures["scenarios"]] == ["ab", "busy"]
    assert figures["overall"]["true_positives"] == 1
    assert figures["unlabeled_keys"] == "negative"
    text = report.read_text()
    assert 'id="summary"' in text and text.count("<svg") >= 3 and "would raise about" in text
    assert 'id="details"' in text and "k3" in text  # the unlabeled false positive, for review
    printed = capsys.readouterr().out
    assert "precision" in printed and "At 1,000,000 keys" in printed


def test_demo_data_with_its_planted_labels(tmp_path):
    from assay.demo import demo_pack, generate

    ev, planted = generate(customers=3000, seed=5)
    lab = load_labels(planted.select("key", pl.lit(1).alias("label")))
    result = backtest(assay.parse_scenarios(demo_pack()), assay.read_events(ev).events, lab)
    trio = result.figures[0]
    assert trio.true_positives == 25
    assert result.overall.true_positives == planted.height
    assert result.overall.recall == 1.0


def test_amlsim_fan_in_accounts(data_dir):
    """Real labelled AML data: fan-in receivers among 20,000 accounts (labels per account)."""
    folder = data_dir / "amlsim-20k" / "fanin200"
    tx = pl.read_csv(folder / "transactions.csv.gz")
    nodes = pl.read_csv(folder / "nodes.csv.gz")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    frame = tx.with_row_index("event_id").select(
        pl.col("event_id").cast(pl.String),
        pl.col("sourceNodeId").cast(pl.String).alias("entity"),
        pl.col("targetNodeId").cast(pl.String).alias("counterparty"),
        (pl.lit(start) + pl.duration(days=pl.col("time"))).alias("ts"),
        pl.col("value").alias("amount"))
    spec = assay.parse_scenarios("""
version: 1
purpose: aml
scenarios:
  - {id: fan-in, kind: aggregate, key: counterparty, metric: distinct(entity), op: ">=", threshold: 8,
     window: 30d}
""")
    lab = load_labels(nodes.select(pl.col("nodeid").cast(pl.String).alias("key"),
                                   pl.col("isFraud").cast(pl.String).alias("label")))
    result = backtest(spec, assay.read_events(frame).events, lab, population=10_000_000)
    f = result.figures[0]
    assert f.alerted_keys > 0 and f.true_positives > 0
    assert 0 < f.precision <= 1 and 0 < f.recall <= 1
    assert f.projection and f.projection["false_alerts_per_month"] >= 0
