from __future__ import annotations

import gzip
import itertools
import math
import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import assay
from assay.cli import main
from assay.mining import (
    association_rules,
    baskets_from_events,
    baskets_from_lists,
    frequent_itemsets,
    min_count,
    mine,
    read_basket_file,
)

fim = pytest.importorskip("fim")  # pyfim: the reference implementation (test-only dependency)


def as_dict(frame: pl.DataFrame) -> dict[frozenset[str], int]:
    return {frozenset(items): count for items, count in zip(frame["items"].to_list(), frame["count"].to_list(),
                                                            strict=True)}


def pyfim_itemsets(baskets: list[list[str]], count: int, max_len: int | None = None) -> dict:
    extra = {"zmax": max_len} if max_len else {}
    found = fim.fpgrowth(baskets, supp=-count, zmin=1, report="a", **extra)
    return {frozenset(items): c for items, c in found}


@pytest.mark.parametrize("name, supports", [("retail.dat.gz", [0.01, 0.001, 0.0005]),
                                            ("T10I4D100K.dat.gz", [0.01, 0.005, 0.002])])
def test_fimi_equals_pyfim(data_dir, name, supports):
    path = data_dir / "fimi" / name
    baskets = read_basket_file(path)
    with gzip.open(path, "rt") as fh:
        lines = [line.split() for line in fh.read().splitlines()]
    for support in supports:
        ours = as_dict(frequent_itemsets(baskets, support))
        assert ours == pyfim_itemsets(lines, min_count(support, baskets.count)), support


def test_groceries_equals_pyfim_with_max_len(data_dir):
    lines = [[x for x in line.split(",") if x] for line in (data_dir / "groceries" / "groceries.csv").read_text()
             .splitlines()]
    baskets = baskets_from_lists(lines)
    for support, max_len in [(0.01, None), (0.002, 3), (0.001, None)]:
        ours = as_dict(frequent_itemsets(baskets, support, max_len))
        assert ours == pyfim_itemsets(lines, min_count(support, len(lines)), max_len)


def brute_force(baskets: list[set[str]], count: int, max_len: int | None) -> dict:
    items = sorted(set().union(*baskets)) if baskets else []
    out = {}
    for size in range(1, (max_len or len(items)) + 1):
        for combo in itertools.combinations(items, size):
            c = sum(1 for b in baskets if set(combo) <= b)
            if c >= count:
                out[frozenset(combo)] = c
    return out


@settings(max_examples=150, deadline=None)
@given(baskets=st.lists(st.sets(st.sampled_from(list("abcdefg") + ["ü", "日本"]), max_size=6), max_size=30),
       count=st.integers(1, 5), max_len=st.sampled_from([None, 1, 2, 3]))
def test_generated_baskets_equal_brute_force(baskets, count, max_len):
    ours = as_dict(frequent_itemsets(baskets_from_lists([sorted(b) for b in baskets]), count, max_len))
    assert ours == brute_force(baskets, count, max_len)


@settings(max_examples=100, deadline=None)
@given(baskets=st.lists(st.lists(st.sampled_from(list("abcdefgh")), max_size=7), max_size=25),
       count=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_events_in_any_order_with_repeated_items_equal_brute_force(baskets, count, seed):
    rows = [(f"t{b}", item) for b, basket in enumerate(baskets) for item in basket]
    random.Random(seed).shuffle(rows)  # transactions interleaved, items repeated within one
    frame = pl.DataFrame({"event_id": [r[0] for r in rows], "entity": "k",
                          "ts": "2024-01-01T00:00:00Z", "item": [r[1] for r in rows]},
                         schema_overrides={"event_id": pl.String, "item": pl.String})
    nonempty = [set(b) for b in baskets if b]
    if not rows:
        return
    ours = as_dict(frequent_itemsets(baskets_from_events(assay.read_events(frame).events), count))
    assert ours == brute_force(nonempty, count, None)


def test_rules_metrics():
    baskets = baskets_from_lists([["a", "b"], ["a", "b"], ["a"], ["b", "c"]])
    itemsets = frequent_itemsets(baskets, 1)
    rules = association_rules(itemsets, 4, min_confidence=0.0)
    ab = rules.filter((pl.col("antecedent") == ["a"]) & (pl.col("consequent") == ["b"])).row(0, named=True)
    # s(ab)=.5, s(a)=.75, s(b)=.75: confidence 2/3, lift 8/9, leverage .5-.5625, conviction (1-.75)/(1-2/3)
    assert ab["support"] == pytest.approx(0.5) and ab["confidence"] == pytest.approx(2 / 3)
    assert ab["lift"] == pytest.approx(8 / 9) and ab["leverage"] == pytest.approx(0.5 - 0.5625)
    assert ab["conviction"] == pytest.approx(0.75)
    bc = rules.filter((pl.col("antecedent") == ["c"]) & (pl.col("consequent") == ["b"])).row(0, named=True)
    assert bc["confidence"] == 1 and math.isinf(bc["conviction"])


def test_baskets_from_events_by_transaction_and_by_key_window():
    frame = pl.DataFrame({
        "event_id": ["t1", "t1", "t2", "t3", "t4"],
        "entity": ["k", "k", "k", "k", "m"],
        "ts": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z",
               "2024-01-05T00:00:00Z", "2024-01-01T00:00:00Z"],
        "item": ["a", "b", "c", "a", "a"],
    })
    events = assay.read_events(frame).events
    by_tx = baskets_from_events(events)
    assert by_tx.count == 4
    by_key = baskets_from_events(events, by="entity", window="72h")
    # k: {a, b, c} (t1, t2 within 72h of t1), then {a} (t3); m: {a}
    assert by_key.count == 3
    sets = by_key.pairs.group_by("basket").agg("item").sort("basket")["item"].to_list()
    assert [sorted(s) for s in sets] == [["a", "b", "c"], ["a"], ["a"]]
    assert by_key.keys.to_list() == ["k", "k", "m"]
    assert as_dict(mine(frame, by="entity", window="72h", min_support=2).itemsets) == {frozenset({"a"}): 3}


def test_cli_mine_writes_itemsets_and_rules(data_dir, tmp_path, capsys):
    out, rules = tmp_path / "itemsets.jsonl", tmp_path / "rules.parquet"
    assert main(["mine", str(data_dir / "fimi" / "retail.dat.gz"), "--min-support", "0.01", "--out", str(out),
                 "--rules", str(rules), "--top", "3"]) == 0
    first = pl.read_ndjson(out).row(0, named=True)
    assert set(first) == {"items", "count", "support"} and first["items"] == ["39"]
    assert {"antecedent", "consequent", "support", "confidence", "lift", "leverage", "conviction"} <= set(
        pl.read_parquet(rules).columns)
    printed = capsys.readouterr().out
    assert "frequent itemsets in 88,162 baskets" in printed and "rules by lift" in printed


def test_cli_mine_usage_errors(tmp_path, capsys):
    path = tmp_path / "b.dat"
    path.write_text("a b\nb c\n")
    assert main(["mine", str(path), "--window", "72h"]) == 2
    assert "--window goes with --by KEY" in capsys.readouterr().err
    assert main(["mine", str(path), "--min-support", "0"]) == 2


def test_contrast_finds_the_planted_trio_and_suggests_runnable_scenarios(tmp_path):
    from assay.backtest import load_labels
    from assay.contrast import contrast, suggest
    from assay.demo import generate

    events, planted = generate(customers=3000, seed=5)
    trio = planted.filter(pl.col("pattern") == "precursor-trio")
    labels = load_labels(trio.select("key", pl.lit(1).alias("label")))
    baskets = baskets_from_events(assay.read_events(events).events, by="entity", window="7d")
    found = contrast(baskets, labels, min_support=0.5)
    best = found.row(0, named=True)
    assert sorted(best["items"]) == ["ball bearings", "kitchen timer", "pressure cooker"]
    assert best["precision"] > 0.5 and best["odds_ratio_low"] > 1
    assert (found["positive_keys"] >= 13).all()  # half of the 25 positive keys, as asked
    path = tmp_path / "suggested.yaml"
    suggest(found, purpose="precursor-compliance", window="7d", top=2, path=path)
    spec = assay.load_scenarios(path)
    assert [s.id for s in spec.scenarios] == ["mined-01", "mined-02"]
    assert "odds ratio" in path.read_text()
    alerts = assay.run(spec, events)
    caught = set(alerts.filter(pl.col("scenario") == "mined-01")["key"].to_list())
    assert caught >= set(trio["key"].to_list())


def test_contrast_counts_keys_exactly():
    from assay.backtest import load_labels
    from assay.contrast import contrast

    # k1, k2 positive; k3, k4 negative; k5 unlabeled. {a, b} held by k1, k2 (in a later basket) and k3
    baskets = baskets_from_lists([["a", "b"], ["c"], ["a", "b", "c"], ["a", "b"], ["a"], ["b"]])
    baskets.keys = pl.Series(["k1", "k2", "k2", "k3", "k4", "k5"])
    labels = load_labels(pl.DataFrame({"key": ["k1", "k2", "k3", "k4"], "label": ["1", "1", "0", "0"]}))
    found = contrast(baskets, labels, min_support=1.0, max_len=2)
    ab = found.filter(pl.col("items") == ["a", "b"]).row(0, named=True)
    assert (ab["positive_keys"], ab["negative_keys"]) == (2, 1)
    assert ab["support_positive"] == 1.0 and ab["support_negative"] == pytest.approx(1 / 3)
    assert ab["precision"] == pytest.approx(2 / 3) and ab["recall"] == 1.0
    # Haldane-corrected odds ratio: (2.5 * 2.5) / (1.5 * 0.5)
    assert ab["odds_ratio"] == pytest.approx(2.5 * 2.5 / (1.5 * 0.5))
    excluded = contrast(baskets, labels, min_support=1.0, max_len=2, unlabeled="exclude")
    assert excluded.filter(pl.col("items") == ["b"]).row(0, named=True)["negative_keys"] == 1


def test_cli_mine_with_labels(tmp_path, capsys):
    from assay.demo import generate

    events, planted = generate(customers=2000, seed=5)
    ev = tmp_path / "events.parquet"
    events.write_parquet(ev)
    lab = tmp_path / "labels.csv"
    planted.filter(pl.col("pattern") == "precursor-trio").select("key", pl.lit(1).alias("label")).write_csv(lab)
    sugg = tmp_path / "s.yaml"
    assert main(["mine", str(ev), "--by", "entity", "--window", "7d", "--labels", str(lab), "--min-support", "0.5",
                 "--suggest", str(sugg), "--purpose", "precursor-compliance", "--suggest-top", "1"]) == 0
    assert "ball bearings, kitchen timer, pressure cooker" in capsys.readouterr().out
    assert main(["check", str(sugg)]) == 0
    assert main(["mine", str(ev), "--by", "entity", "--window", "7d", "--labels", str(lab), "--suggest",
                 str(sugg)]) == 2
    assert "--suggest needs --purpose" in capsys.readouterr().err
