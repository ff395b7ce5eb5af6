"""The engine equals the reference evaluator (SPEC.md) on generated events and scenarios."""

from __future__ import annotations

from unittest.mock import patch

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import assay
from assay import engine, windowed
from gen import comparable, events, scenarios, to_frame
from reference import reference_alerts

RATIO = windowed.INDEX_RATIO
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rows=events(), spec=scenarios())
def test_engine_equals_reference(rows, spec):
    refs, yaml_text = spec
    expected = reference_alerts("fraud", refs, rows)
    got = comparable(assay.run(yaml_text, to_frame(rows)))
    assert got == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=events(), spec=scenarios())
def test_trigger_positions_of_a_large_batch_equal_the_reference(rows, spec):
    """A batch of at least ``MEMBER_SCAN_ROWS`` finds the rows sharing a trigger's event_id
    with a Bloom-filtered pass of its own (the ids, and so the positions, are compared)."""
    refs, yaml_text = spec
    with patch.object(engine, "MEMBER_SCAN_ROWS", 0):
        got = comparable(assay.run(yaml_text, to_frame(rows)))
    assert got == reference_alerts("fraud", refs, rows)


@SETTINGS
@given(rows=events(), spec=scenarios(), data=st.data())
def test_any_chunking_gives_the_batch_alerts(rows, spec, data):
    _, yaml_text = spec
    if not rows:
        return
    ordered = sorted(rows, key=lambda r: r["ts"])  # canonical order: a stream in time order
    frame = to_frame(ordered)
    batch = assay.run(yaml_text, frame)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(ordered)), max_size=6)))
    # micro-batches find their keys' earlier rows by the key index, or by scanning the state
    windowed.INDEX_RATIO = 0 if data.draw(st.booleans()) else 10**9
    engine = assay.stream(yaml_text)
    got = []
    stored: list[bytes] = []
    start = 0
    for cut in [*cuts, len(ordered)]:
        part = assay.read_events(frame[start:cut]).events if cut > start else None
        start = max(start, cut)
        if part is not None:
            res = engine.push(part)
            assert res.late.height == 0
            got.append(res.alerts)
        # checkpoints as a stream worker stores them: a full snapshot, then deltas on top;
        # a restart restores the full one and applies the deltas in order
        action = data.draw(st.sampled_from(["", "", "full", "delta", "restart"]))
        if action == "full" or (action and not stored):
            stored = [engine.snapshot()]
        elif action:
            stored.append(engine.snapshot(delta=True))
        if action == "restart":
            engine = assay.stream(yaml_text)
            for state in stored:
                engine.restore(state)
    got.append(engine.flush())
    windowed.INDEX_RATIO = RATIO
    assert comparable(pl.concat(got)) == comparable(batch)


@SETTINGS
@given(rows=events(max_rows=30), spec=scenarios(), lateness=st.sampled_from([0, 1, 60, 10_000]),
       data=st.data())
def test_lateness_holds_rows_and_rejects_too_late(rows, spec, lateness, data):
    """Out-of-order arrival: rows within the lateness are reordered; later ones are dead-lettered.

    The alerts equal a batch run over the rows that were not too late, in arrival order.
    """
    _, yaml_text = spec
    if not rows:
        return
    frame = to_frame(rows)
    engine = assay.stream(yaml_text, lateness=f"{lateness}s")
    size = data.draw(st.integers(1, len(rows)))
    alerts, late = [], []
    for start in range(0, len(rows), size):
        res = engine.push(assay.read_events(frame[start:start + size]).events)
        alerts.append(res.alerts)
        late.append(res.late)
    alerts.append(engine.flush())
    late_ids = set()
    for part in late:
        if part.height:
            late_ids |= set(part["_seq"].to_list())
    # a row is too late when its ts is below (largest ts before it) - lateness
    top = None
    expected_late = set()
    for i, r in enumerate(rows):
        if top is not None and r["ts"] < top - lateness * 1_000_000:
            expected_late.add(i)
        top = r["ts"] if top is None else max(top, r["ts"])
    assert late_ids == expected_late
    kept = frame.with_row_index("_i").filter(~pl.col("_i").is_in(list(expected_late))).drop("_i")
    if kept.height:
        batch = comparable(assay.run(yaml_text, kept))
        got = comparable(pl.concat(alerts))
        # trigger positions and ids depend only on kept rows
        assert got == batch
