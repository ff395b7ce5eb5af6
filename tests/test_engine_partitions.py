"""One engine for several partitions gives each partition's own alerts (docs/streaming.md).

A stream worker pushes the micro-batches of all its partitions into one engine
(``Engine.push_many``); each partition keeps its watermark, held rows, event-id counts and
retained rows, and is checkpointed and restored on its own.
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import assay
from assay import windowed
from assay.retained import lane_base
from gen import comparable, events, scenarios, to_frame

RATIO = windowed.INDEX_RATIO
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def components(rows: list[dict]) -> list[int]:
    """A group number per row: rows sharing an entity or a counterparty are in one group, so
    that every key of either column lands in one partition (as a stream partitioned by key)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for r in rows:
        parent[find(f"e:{r['entity']}")] = find(f"c:{r['counterparty']}")
    roots: dict[str, int] = {}
    return [roots.setdefault(find(f"e:{r['entity']}"), len(roots)) for r in rows]


def one_scenario(line: str) -> str:
    """A scenario file (purpose fraud) with this one scenario."""
    return f"version: 1\npurpose: fraud\nscenarios:\n  - {line}\n"


def by_id(alerts: pl.DataFrame) -> list[dict]:
    return sorted({a["alert_id"]: a for a in comparable(alerts)}.values(), key=lambda a: a["alert_id"])


@SETTINGS
@given(rows=events(), spec=scenarios(), data=st.data())
def test_partitions_sharing_an_engine_give_each_partitions_alerts(rows, spec, data):
    _, yaml_text = spec
    if not rows:
        return
    ordered = sorted(rows, key=lambda r: r["ts"])
    count = data.draw(st.integers(1, 4), label="partitions")
    numbers = data.draw(st.lists(st.integers(0, 40), min_size=count, max_size=count, unique=True))
    group = components(ordered)
    lane = pl.Series([numbers[g % count] for g in group])
    frame = to_frame(ordered)
    parts = {p: frame.filter(lane == p) for p in numbers}
    expected = pl.concat([assay.run(yaml_text, f) for f in parts.values() if f.height])
    lateness = data.draw(st.sampled_from([0, 0, 30]))
    windowed.INDEX_RATIO = 0 if data.draw(st.booleans()) else 10**9

    def engine() -> assay.Engine:
        return assay.stream(yaml_text, lateness=f"{lateness}s")

    owner = dict.fromkeys(numbers, engine())  # the engine (worker) each partition is in
    done = dict.fromkeys(numbers, 0)  # rows pushed, per partition
    saved: dict[int, tuple[int, list[bytes]]] = {}  # per partition: rows covered, checkpoints
    got = []
    while any(done[p] < parts[p].height for p in numbers):
        batches: dict[int, dict[int, pl.DataFrame]] = {}  # per engine
        for p in numbers:
            take = data.draw(st.integers(0, 6))
            if take and done[p] < parts[p].height:
                batches.setdefault(id(owner[p]), {})[p] = assay.read_events(parts[p][done[p]:done[p] + take]).events
                done[p] = min(done[p] + take, parts[p].height)
        for batch in batches.values():
            res = owner[next(iter(batch))].push_many(batch)
            assert res.late.height == 0
            got.append(res.alerts)
        # each partition is checkpointed at its own moments, a full state then deltas on top
        for p in numbers:
            action = data.draw(st.sampled_from(["", "", "full", "delta"]))
            if action == "full" or (action and p not in saved):
                saved[p] = (done[p], [owner[p].snapshot(partition=p)])
            elif action:
                saved[p] = (done[p], [*saved[p][1], owner[p].snapshot(delta=True, partition=p)])
        if data.draw(st.integers(0, 7)) == 0:
            # a restart, the partitions divided between one or two engines (workers): each
            # partition from its checkpoints, and its later rows again (their alerts come
            # again, with the same ids: the store keeps one)
            fresh = [engine(), engine()]
            for p in numbers:
                owner[p] = fresh[data.draw(st.integers(0, 1))]
                covered, states = saved.get(p, (0, []))
                for state in states:
                    owner[p].restore(state, partition=p)
                done[p] = covered
    got += [e.flush() for e in {id(e): e for e in owner.values()}.values()]
    windowed.INDEX_RATIO = RATIO
    assert by_id(pl.concat(got)) == by_id(expected)


def test_a_partition_restored_from_a_checkpoint_of_an_earlier_version():
    """Checkpoints written when each partition had its own engine number rows from 0."""
    spec = one_scenario('{id: two, kind: aggregate, metric: count, op: ">=", threshold: 2, window: 1h, key: entity}')
    frame = pl.DataFrame({"event_id": ["a", "b", "c"], "entity": ["x", "x", "x"],
                          "ts": ["2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z", "2024-01-01T00:20:00Z"]})
    events_ = assay.read_events(frame).events
    old = assay.stream(spec, lateness="1h")  # partition 0's numbering is the old one
    old.push(events_[:1])
    state = old.snapshot()
    engine = assay.stream(spec, lateness="1h")
    engine.restore(state, partition=5)
    engine.push(events_[1:], partition=5)
    assert engine.flush()["trigger_event_id"].to_list() == ["b"]  # the edge: the count reached 2
    assert engine.lane(5).next_seq == lane_base(5) + 3


def test_a_partition_moves_to_another_engine_with_its_conditions():
    """Each partition's checkpoint holds its keys' conditions: the edge trigger survives a move."""
    spec = one_scenario('{id: any, kind: aggregate, metric: count, op: ">=", threshold: 1, window: 1h, key: entity}')

    def rows(entity: str, minute: int) -> pl.DataFrame:
        return assay.read_events(pl.DataFrame({"event_id": [f"{entity}{minute}"], "entity": [entity],
                                               "ts": [f"2024-01-01T00:{minute:02d}:00Z"]})).events

    first = assay.stream(spec)
    found = first.push_many({1: rows("x", 0), 2: rows("y", 1)}).alerts
    assert sorted(found["key"]) == ["x", "y"]
    second = assay.stream(spec)
    second.restore(first.snapshot(partition=2), partition=2)
    assert first.snapshot(partition=1) != first.snapshot(partition=2)
    # y's condition held at its last row: its next row in the window is no new alert
    assert second.push(rows("y", 2), partition=2).alerts.height == 0
    assert second.push(rows("x", 3), partition=1).alerts.height == 1  # x was not moved here


def test_rows_held_under_a_lateness_are_released_in_order_without_one():
    """A checkpoint taken with a lateness holds rows out of order; an engine without one
    releases them in canonical order."""
    spec = one_scenario('{id: ab, kind: combination, items: [a, b], window: 1h}')
    frame = pl.DataFrame({"event_id": ["2", "1", "3"], "entity": ["x", "x", "x"], "item": ["b", "a", "c"],
                          "ts": ["2024-01-01T00:20:00Z", "2024-01-01T00:10:00Z", "2024-01-01T00:30:00Z"]})
    events_ = assay.read_events(frame).events
    late = assay.stream(spec, lateness="1h")
    assert late.push(events_[:2]).alerts.height == 0  # both held, the later one first
    engine = assay.stream(spec)
    engine.restore(late.snapshot())
    found = engine.push(events_[2:]).alerts
    assert found["trigger_event_id"].to_list() == ["2"]  # b after a, in ts order


def test_a_checkpoint_of_aggregates_each_in_its_own_detector_restores():
    """Earlier versions gave each aggregate its own detector; aggregates sharing key and
    ``where`` now share one. An engine restoring such a checkpoint keeps that layout, and
    continues exactly."""
    from assay.detectors import build_detectors

    spec = """version: 1
purpose: fraud
scenarios:
  - {id: many, kind: aggregate, metric: count, op: ">=", threshold: 3, window: 1h, key: entity}
  - {id: much, kind: aggregate, metric: sum(amount), op: ">", threshold: 30, window: 30m, key: entity}
  - {id: pair, kind: combination, items: [a, b], window: 1h, key: entity}
"""
    n = 400
    frame = assay.read_events(pl.DataFrame({
        "event_id": [f"e{i}" for i in range(n)], "entity": [f"k{i % 7}" for i in range(n)],
        "ts": pl.datetime_range(pl.datetime(2024, 1, 1, time_zone="UTC"), pl.datetime(2024, 1, 2, time_zone="UTC"),
                                interval="3m", eager=True)[:n],
        "item": [("a", "b", "c")[i % 3] for i in range(n)], "amount": [float(i % 23) for i in range(n)]})).events
    straight = assay.stream(spec)
    expected = pl.concat([straight.push(frame[:150]).alerts, straight.push(frame[150:]).alerts])
    assert len(straight.detectors) == 2  # the two aggregates share one
    old = assay.stream(spec)
    old.detectors = build_detectors(old.file.scenarios, share_aggregates=False)
    first = old.push(frame[:150]).alerts
    again = assay.stream(spec)
    again.restore(old.snapshot())
    assert len(again.detectors) == 3
    second = again.push(frame[150:]).alerts
    assert by_id(pl.concat([first, second])) == by_id(expected)
    assert expected.height > 10 and set(expected["scenario"]) == {"many", "much", "pair"}
    mixed = assay.stream(spec)
    mixed.push(frame[:10])
    with pytest.raises(ValueError, match="does not match"):
        mixed.restore(old.snapshot(), partition=3)


def test_a_paced_serialization_gives_the_same_bytes():
    """A worker serializes checkpoints a frame at a time with pauses between: same bytes."""
    spec = one_scenario('{id: two, kind: aggregate, metric: count, op: ">=", threshold: 2, window: 1h, key: entity}')
    engine = assay.stream(spec)
    engine.push(assay.read_events(pl.DataFrame({"event_id": ["a", "b"], "entity": ["x", "y"],
                                                "ts": ["2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z"]})).events)
    state = engine.capture()
    assert state.to_bytes(pace=0.5) == state.to_bytes()
