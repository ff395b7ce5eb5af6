from __future__ import annotations

import polars as pl
from rich.console import Console

import assay
from assay.demo import demo_pack, generate, run_demo


def test_generation_is_deterministic_and_realistic():
    a, planted_a = generate(customers=2000, seed=3)
    b, planted_b = generate(customers=2000, seed=3)
    assert a.equals(b) and planted_a.equals(planted_b)
    assert a["ts"].is_sorted()
    assert a.group_by("event_id").len()["len"].max() > 3  # baskets of several lines
    assert a["ts"].n_unique() < a.height  # identical timestamps
    assert (a["type"] == "refund").sum() > 0 and (a["amount"] < 0).sum() > 0
    assert set(planted_a["pattern"]) == {"precursor-trio", "cash-structuring", "merchant-fan-in"}


def test_demo_catches_every_planted_case(tmp_path):
    console = Console(record=True, width=120)
    assert run_demo(tmp_path, customers=3000, seed=5, console=console) == 0
    text = console.export_text()
    assert "25 of 25" in text and "15 of 15" in text and "4 of 4" in text
    assert "base-rate lesson" in text
    for name in ("events.parquet", "scenarios.yaml", "alerts.jsonl", "planted.csv", "labels.csv"):
        assert (tmp_path / name).exists()
    alerts = assay.read_alerts(tmp_path / "alerts.jsonl")
    planted = pl.read_csv(tmp_path / "planted.csv")
    caught = alerts.join(planted, left_on=["key", "scenario"], right_on=["key", "pattern"])
    assert caught.select("key", "scenario").unique().height == planted.height


def test_demo_pack_is_valid():
    spec = assay.parse_scenarios(demo_pack())
    assert [s.id for s in spec.scenarios] == ["precursor-trio", "cash-structuring", "merchant-fan-in"]
