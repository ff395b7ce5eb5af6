"""The Parquet fast path (filter inside the scan) gives exactly the alerts of the full read."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

import assay
from assay.pushdown import eligible
from gen import comparable, events, scenarios, to_frame
from reference import reference_alerts

COMBOS = """
version: 1
purpose: fraud
scenarios:
  - {id: ab, kind: combination, items: [a, b], window: 1h}
  - {id: big, kind: aggregate, metric: count, op: ">=", threshold: 2, window: 1h, where: "amount > 50"}
"""


def frame() -> pl.DataFrame:
    return pl.DataFrame({
        # basket t1 holds an irrelevant line before the relevant one: positions count it
        "event_id": ["t0", "t1", "t1", "t2", "t3", "t3"],
        "entity": ["x", "x", "x", "x", "y", "y"],
        "ts": ["2024-01-01T00:00:00Z"] * 2 + ["2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z"] + [
            "2024-01-01T00:20:00Z"] * 2,
        "item": ["z", "q", "a", "b", "b", "a"],
        "amount": [60.0, 1.0, 70.0, 2.0, 80.0, 90.0],
    }).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))


def test_fast_path_equals_full_read(tmp_path):
    path = tmp_path / "e.parquet"
    frame().write_parquet(path)
    assert eligible(path, {})
    fast = assay.run(COMBOS, path)
    full = assay.run(COMBOS, frame())  # frames never take the fast path
    assert fast.equals(full)
    assert fast.height == 4


def test_several_files_keep_arrival_order(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame()[:3].write_parquet(a)
    frame()[3:].write_parquet(b)
    assert assay.run(COMBOS, [a, b]).equals(assay.run(COMBOS, frame()))
    result = assay.run_detailed(COMBOS, [a, b])
    assert result.rows_read == 6


@pytest.mark.parametrize("bad, message", [
    (pl.col("entity").replace("y", None), "column 'entity'"),
    (pl.col("entity").replace("y", ""), "column 'entity'"),
])
def test_bad_required_values_still_stop_the_run(tmp_path, bad, message):
    path = tmp_path / "e.parquet"
    frame().with_columns(bad).write_parquet(path)
    assert not eligible(path, {})
    with pytest.raises(assay.InputError, match=message):
        assay.run(COMBOS, path)


def test_text_timestamps_take_the_ordinary_path(tmp_path):
    path = tmp_path / "e.parquet"
    frame().with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_parquet(path)
    assert not eligible(path, {})
    assert assay.run(COMBOS, path).height == 4


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=events(), spec=scenarios())
def test_engine_through_parquet_equals_reference(rows, spec):
    refs, yaml_text = spec
    if not rows:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.parquet"
        to_frame(rows).write_parquet(path)
        assert comparable(assay.run(yaml_text, path)) == reference_alerts("fraud", refs, rows)


def test_few_relevant_rows_prefetch_positions_equal_full_read(tmp_path):
    """Under 5% relevant rows: the trigger positions come from a scan started early."""
    n = 4000
    rows = pl.DataFrame({
        "event_id": [f"t{i // 4}" for i in range(n)],  # baskets of four lines
        "entity": [f"c{(i // 4) % 7}" for i in range(n)],
        "ts": [f"2024-01-01T{(i // 4) // 60 % 24:02d}:{(i // 4) % 60:02d}:00Z" for i in range(n)],
        # the relevant lines come last in their basket: their position counts the others
        "item": ["a" if i % 97 == 3 else "b" if i % 89 == 3 else "z" for i in range(n)],
        "amount": [1.0] * n,
    }).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    path = tmp_path / "few.parquet"
    rows.write_parquet(path)
    spec = "version: 1\npurpose: fraud\nscenarios:\n  - {id: ab, kind: combination, items: [a, b], window: 24h}\n"
    fast = assay.run(spec, path)
    assert fast.height > 0
    assert fast.equals(assay.run(spec, rows))


def test_numbers_stored_as_text_take_the_ordinary_path(tmp_path):
    path = tmp_path / "e.parquet"
    frame().with_columns(pl.col("amount").cast(pl.String)).write_parquet(path)
    assert assay.run(COMBOS, path).equals(assay.run(COMBOS, frame()))
    frame().with_columns(pl.col("amount").cast(pl.String).replace("2.0", "two")).write_parquet(path)
    with pytest.raises(assay.InputError, match="column 'amount'.*'two'"):
        assay.run(COMBOS, path)


def test_empty_text_is_no_value_on_the_fast_path(tmp_path):
    path = tmp_path / "e.parquet"
    rows = frame().with_columns(pl.col("item").replace("q", ""), pl.Series("channel", ["", "web", "", "app", "", "app"]))
    rows.write_parquet(path)
    fast = assay.run_detailed(COMBOS, path)
    assert fast.events["item"].null_count() == 0  # only relevant rows are read
    spec = COMBOS.replace('where: "amount > 50"', "where: \"channel != 'web'\"")
    assert assay.run(spec, path).equals(assay.run(spec, rows))


def test_the_footer_tells_which_text_columns_hold_no_empty_value(tmp_path):
    """Those skip the pass that turns empty values into no value; one empty value in any row
    group keeps it (and the fast path still gives what the ordinary reader gives)."""
    from assay.pushdown import _clean_footer

    path = tmp_path / "e.parquet"
    rows = frame().with_columns(pl.Series("channel", ["web", "web", "app", "app", "", "app"]),
                                pl.Series("note", ["x", None, "y", "z", "x", "y"]))
    rows.write_parquet(path, row_group_size=2)
    footer = _clean_footer(path, {})
    assert footer is not None and footer.rows == 6 and footer.row_groups == [2, 2, 2]
    assert "channel" not in footer.never_empty and "note" in footer.never_empty and "item" in footer.never_empty
    spec = COMBOS.replace('where: "amount > 50"', "where: \"channel != 'app'\"")
    assert assay.run(spec, path).equals(assay.run(spec, rows))


def test_a_bad_metric_on_the_fast_path_names_its_file_and_row(tmp_path):
    """The fast path numbers rows once (``_seq``, across files); a message still gives the
    row's number in its own file."""
    spec = """
version: 1
purpose: fraud
scenarios:
  - {id: s, kind: aggregate, metric: sum(amount), op: ">=", threshold: 100, window: 1h, where: "item == 'a'"}
"""
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame().write_parquet(a)
    frame().with_columns(pl.when(pl.int_range(pl.len()) == 5).then(float("nan")).otherwise(pl.col("amount"))
                         .alias("amount")).write_parquet(b)
    assert eligible(b, {})
    with pytest.raises(assay.InputError) as caught:
        assay.run(spec, [a, b])
    assert caught.value.file == str(b) and caught.value.row == 6 and caught.value.column == "amount"
