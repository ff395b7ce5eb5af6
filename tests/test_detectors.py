"""Conformance: every detector kind honours the same lifecycle contract (update, expire,
snapshot, restore), like river's check_estimator over all its estimators."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import assay
from assay.detectors import AggregateDetector, CombinationDetector, build_detectors
from assay.errors import ScenarioError
from assay.keys import BatchIndex
from assay.scenarios import build_scenario, parse_scenarios

KINDS = {
    "combination": {"kind": "combination", "items": ["a", "b", "c"], "min_distinct": 2, "window": "1h"},
    "count": {"kind": "aggregate", "metric": "count", "op": ">=", "threshold": 3, "window": "1h"},
    "sum": {"kind": "aggregate", "metric": "sum(amount)", "op": ">", "threshold": 100.5, "window": "1h"},
    "mean": {"kind": "aggregate", "metric": "mean(amount)", "op": "<", "threshold": 10, "window": "1h"},
    "min": {"kind": "aggregate", "metric": "min(amount)", "op": "<=", "threshold": 5, "window": "1h"},
    "max": {"kind": "aggregate", "metric": "max(amount)", "op": ">=", "threshold": 90, "window": "1h"},
    "distinct": {"kind": "aggregate", "metric": "distinct(counterparty)", "op": ">=", "threshold": 3,
                 "window": "1h"},
    # aggregates sharing key and where: one detector (their values in shared columns)
    "aggregates": [{"kind": "aggregate", "metric": "sum(amount)", "op": ">", "threshold": 100.5, "window": "1h"},
                   {"kind": "aggregate", "metric": "distinct(counterparty)", "op": ">=", "threshold": 3,
                    "window": "30m"},
                   {"kind": "aggregate", "metric": "count", "op": ">=", "threshold": 4, "window": "2h"},
                   {"kind": "aggregate", "metric": "max(amount)", "op": ">=", "threshold": 90, "window": "10m"}],
}


def events(n: int = 600, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000 + np.cumsum(rng.integers(0, 120, n))
    frame = pl.DataFrame({
        "event_id": [f"e{i // 2}" for i in range(n)],
        "entity": rng.choice(["k1", "k2", "k3", "k4"], n),
        "ts": ts,
        "item": rng.choice(["a", "b", "c", "d"], n),
        "amount": np.round(rng.uniform(-5, 100, n), 2),
        "counterparty": rng.choice(["m1", "m2", "m3", "m4", "m5"], n),
    })
    frame = frame.with_columns(pl.from_epoch("ts").dt.replace_time_zone("UTC"))
    return assay.read_events(frame).events.with_row_index("_seq").with_columns(pl.col("_seq").cast(pl.Int64))


def detector_for(kind: str):
    fields = KINDS[kind]
    scenarios = tuple(build_scenario({"id": f"{kind}{i}", **one}, "fraud")
                      for i, one in enumerate(fields if isinstance(fields, list) else [fields]))
    (det,) = build_detectors(scenarios)
    return det


def alert_keys(c: pl.DataFrame):
    return sorted(c.select("_seq", "key", "value").iter_rows())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_snapshot_restore_continues_identically(kind):
    rows = events()
    whole = detector_for(kind)
    expected = alert_keys(whole.update(rows))
    assert expected, "the conformance data should make every kind fire"
    first = detector_for(kind)
    got = alert_keys(first.update(rows[:250]))
    second = detector_for(kind)
    second.restore(first.snapshot())
    got += alert_keys(second.update(rows[250:]))
    assert got == expected


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_delta_snapshots_restore_on_top_of_a_full_one(kind):
    """A full snapshot, then deltas (rows appended and cut in between), restore the same state."""
    rows = events(1200)

    def fed(det, start: int, stop: int) -> list:
        out = []
        for i in range(start, stop, 100):
            out += alert_keys(det.update(rows[i:i + 100]))
            det.expire(int(rows["ts"][min(i + 99, rows.height - 1)].timestamp() * 1_000_000))
        return out

    whole = detector_for(kind)
    expected = fed(whole, 0, rows.height)
    first = detector_for(kind)
    got = fed(first, 0, 300)
    stored = [first.snapshot()]
    got += fed(first, 300, 500)
    stored.append(first.snapshot(delta=True))
    stored.append(first.snapshot(delta=True))  # nothing changed: an empty delta
    got += fed(first, 500, 900)
    stored.append(first.snapshot(delta=True))
    assert sum(len(s) for s in stored[1:]) < 3 * len(stored[0])
    second = detector_for(kind)
    for state in stored:
        second.restore(state)
    assert second.retained.equals(first.retained) and second.prev.equals(first.prev)
    got += fed(second, 900, rows.height)
    assert got == expected
    with pytest.raises(ValueError, match="out of order"):
        detector_for(kind).restore(stored[2])


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(("ratio", "collide"), [(0, False), (0, True), (10**9, False)],
                         ids=["key index", "key index, colliding hashes", "scan"])
def test_micro_batches_give_the_alerts_of_one_batch(kind, ratio, collide, monkeypatch):
    """A key's earlier rows found by the key index (rebuilt after a restore) or by a scan;
    ``collide``: every key hashes to one of three values, so lookups bring other keys' rows."""
    monkeypatch.setattr("assay.windowed.INDEX_RATIO", ratio)
    if collide:
        def few(keys: pl.Series) -> np.ndarray:
            return (keys.hash(seed=1).to_numpy() % np.uint64(3)).astype(np.uint64)
        for module in ("assay.windowed", "assay.retained", "assay.key_index"):
            monkeypatch.setattr(f"{module}.key_hashes", few)
    rows = events(1500)
    expected = alert_keys(detector_for(kind).update(rows))
    det = detector_for(kind)
    got = []
    sizes = [1, 7, 50, 3, 200, 1, 1, 90, 400, 2, 300, 445]
    assert sum(sizes) == rows.height
    for i, size in enumerate(sizes):
        start = sum(sizes[:i])
        got += alert_keys(det.update(rows[start:start + size]))
        det.expire(int(rows["ts"][start + size - 1].timestamp() * 1_000_000))
        if i == 6:
            again = detector_for(kind)
            again.restore(det.snapshot())
            det = again
    assert sorted(got) == sorted(expected)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_a_combination_pack_split_over_threads_gives_the_alerts_of_one(threads, monkeypatch):
    """Large inputs run the combination kernel over runs of whole keys on several threads."""
    spec = parse_scenarios("""
version: 1
purpose: fraud
scenarios:
  - {id: ab, kind: combination, items: [a, b], window: 1h}
  - {id: abc, kind: combination, items: [a, b, c], min_distinct: 2, window: 2h}
  - {id: cd, kind: combination, items: [c, d], window: 30m}
""")
    rows = events(3000, seed=4)
    (whole,) = build_detectors(spec.scenarios)
    expected = whole.update(rows, retain=False).sort("_seq", "_scen")
    monkeypatch.setattr("assay.combinations.SPLIT_ROWS", 0)
    monkeypatch.setattr("assay.combinations.KERNEL_THREADS", threads)
    (split,) = build_detectors(spec.scenarios)
    assert expected.height > 20
    assert split.update(rows, retain=False).sort("_seq", "_scen").equals(expected)
    (streamed,) = build_detectors(spec.scenarios)  # with the conditions that held before each part
    got = [streamed.update(rows[i:i + 500]) for i in range(0, rows.height, 500)]
    assert pl.concat(got).sort("_seq", "_scen").equals(expected)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("where", ["", "where: \"amount > 20\""])
@pytest.mark.parametrize("key", ["entity", "counterparty", "n"])
@pytest.mark.parametrize("packed", [True, False])
def test_a_batch_of_a_combination_pack_gives_the_alerts_of_a_stream(threads, where, key, packed, monkeypatch):
    """A batch run reads item and key codes straight from the columns, groups the rows by key
    code and reads them through that order (counting sort and kernel on threads for large
    inputs), each row's time and item packed in one value unless their span is too wide; a
    stream keeps rows. Keys with empty values (counterparty) and of another type (an integer
    column) included."""
    spec = parse_scenarios(f"""
version: 1
purpose: fraud
scenarios:
  - {{id: ab, kind: combination, items: [a, b], window: 1h, key: {key}, {where}}}
  - {{id: abc, kind: combination, items: [a, b, c], min_distinct: 2, window: 2h, key: {key}, {where}}}
  - {{id: cd, kind: combination, items: [c, d], window: 30m, key: {key}, {where}}}
""".replace(", }", "}"))
    rows = events(3000, seed=5).with_columns(
        pl.when(pl.col("counterparty") == "m5").then(None).otherwise(pl.col("counterparty")).alias("counterparty"),
        (pl.col("_seq") % 7).alias("n"))
    (streamed,) = build_detectors(spec.scenarios)
    expected = pl.concat([streamed.update(rows[i:i + 700]) for i in range(0, rows.height, 700)])
    for name in ("combinations.SPLIT_ROWS", "keys.PARALLEL_SORT_ROWS"):
        monkeypatch.setattr(f"assay.{name}", 0 if threads > 1 else 10**9)
    monkeypatch.setattr("assay.combinations.KERNEL_THREADS", threads)
    monkeypatch.setattr("assay.keys.SORT_THREADS", threads)
    if not packed:
        monkeypatch.setattr("assay.combinations.PACKED_BITS", 0)
    (batch,) = build_detectors(spec.scenarios)
    got = batch.update(rows, retain=False, index=BatchIndex(rows))
    assert expected.height > 20
    assert got.sort("_seq", "_scen").equals(expected.sort("_seq", "_scen"))


def test_snapshots_written_without_compression_still_restore():
    """Checkpoints of earlier versions hold uncompressed Arrow IPC frames."""
    import io

    from assay.snapshots import frames_from_bytes

    det = detector_for("sum")
    det.update(events()[:300])
    frames = frames_from_bytes(det.snapshot())
    plain = b""
    for frame in frames:
        buf = io.BytesIO()
        frame.write_ipc(buf)
        plain += len(buf.getvalue()).to_bytes(8, "little") + buf.getvalue()
    again = detector_for("sum")
    again.restore(plain)
    assert again.retained.equals(det.retained) and again.prev.equals(det.prev)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_state_stays_bounded(kind):
    det = detector_for(kind)
    rows = events(3000)
    for start in range(0, rows.height, 100):
        det.update(rows[start:start + 100])
        watermark = rows["ts"][min(start + 99, rows.height - 1)]
        det.expire(int(watermark.timestamp() * 1_000_000))
        # rows older than the window are gone: state holds at most one window of rows (+ keys)
        assert det.state_rows() <= 100 + 4 + 60


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_empty_update_is_harmless(kind):
    det = detector_for(kind)
    out = det.update(events()[:0])
    assert out.height == 0 and det.state_rows() == 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_restore_refuses_other_scenarios(kind):
    det = detector_for(kind)
    det.update(events()[:50])
    fields = KINDS[kind]
    others = tuple(build_scenario({"id": f"{kind}{i}", **one, "window": "3h"}, "fraud")
                   for i, one in enumerate(fields if isinstance(fields, list) else [fields]))
    (changed,) = build_detectors(others)
    with pytest.raises(ScenarioError, match="checkpoint"):
        changed.restore(det.snapshot())


def test_scenarios_sharing_kind_key_and_where_form_one_detector():
    spec = parse_scenarios("""
version: 1
purpose: fraud
scenarios:
  - {id: a, kind: combination, items: [x, y], window: 1h}
  - {id: b, kind: combination, items: [y, z], window: 2h}
  - {id: c, kind: combination, items: [x, z], window: 1h, where: "amount > 0"}
  - {id: d, kind: aggregate, metric: count, op: ">", threshold: 1, window: 1h}
  - {id: e, kind: aggregate, metric: sum(amount), op: ">", threshold: 1, window: 2h}
  - {id: f, kind: aggregate, metric: mean(amount), op: ">", threshold: 1, window: 2h}
  - {id: g, kind: aggregate, metric: count, op: ">", threshold: 1, window: 1h, where: "amount > 0"}
  - {id: h, kind: aggregate, metric: count, op: ">", threshold: 1, window: 1h, key: counterparty}
""")
    dets = build_detectors(spec.scenarios)
    packs = [d for d in dets if isinstance(d, CombinationDetector)]
    assert sorted(len(p.scenarios) for p in packs) == [1, 2]
    aggregates = [d for d in dets if isinstance(d, AggregateDetector)]
    assert sorted([s.id for s in d.scenarios] for d in aggregates) == [["d", "e", "f"], ["g"], ["h"]]
    # sum and mean of one column keep its values once
    (shared,) = [d for d in aggregates if len(d.scenarios) == 3]
    assert shared.value_of == [None, "_val", "_val"] and list(shared.value_schema()) == ["_val"]
