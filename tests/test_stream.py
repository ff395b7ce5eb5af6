"""``assay stream`` on a real NATS JetStream and PostgreSQL: the batch alerts, exactly."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import assay
from assay.store import open_store
from assay.store.models import Alert
from assay.streaming.publish import publish_frame
from assay.streaming.wire import encode
from conftest import NATS_URL

nats = pytest.importorskip("nats")

COLUMNS = ["alert_id", "scenario", "key", "ts", "trigger_event_id", "value", "evidence"]


def scenarios(purpose: str) -> str:
    return f"""
version: 1
purpose: {purpose}
scenarios:
  - id: trio
    kind: combination
    items: [pressure cooker, kitchen timer, ball bearings]
    window: 7d
    where: "amount > 0"
  - id: pair-2h
    kind: combination
    items: [product-001, product-002]
    window: 2h
  - id: busy-hour
    kind: aggregate
    metric: count
    op: ">="
    threshold: 8
    window: 1h
  - id: spend-day
    kind: aggregate
    metric: sum(amount)
    op: ">"
    threshold: 600
    window: 1d
  - id: shops-day
    kind: aggregate
    metric: distinct(counterparty)
    op: ">="
    threshold: 5
    window: 1d
"""


def edge_rows() -> pl.DataFrame:
    """Ties and rows exactly at the window edge and one second past it."""
    t0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
    rows = [  # (event_id, entity, ts, item, amount, counterparty)
        ("x1", "edge-a", t0, "product-001", 5.0, "m1"),
        ("x2", "edge-a", t0 + timedelta(hours=2), "product-002", 5.0, "m1"),  # exactly 2h: in the window
        ("x3", "edge-b", t0, "product-001", 5.0, "m1"),
        ("x4", "edge-b", t0 + timedelta(hours=2, seconds=1), "product-002", 5.0, "m1"),  # one second past
        ("x5", "edge-c", t0, "product-002", 100.0, "m1"),
        ("x5", "edge-c", t0, "product-001", 100.0, "m2"),  # same basket, same ts
        ("x6", "edge-c", t0, "product-003", 100.0, "m3"),  # a tie with another event
    ]
    return pl.DataFrame(rows, schema=["event_id", "entity", "ts", "item", "amount", "counterparty"], orient="row")


def dataset(customers: int, seed: int) -> pl.DataFrame:
    from assay.demo import generate

    events, _ = generate(customers=customers, seed=seed)
    events = events.select("event_id", "entity", "ts", "item", "amount", "counterparty")
    edges = edge_rows().with_columns(pl.col("ts").cast(events.schema["ts"]))
    # arrival order = ts order (ties keep input order): no row is late with lateness 0
    return pl.concat([events, edges]).sort("ts", maintain_order=True)


def stored_alerts(url: str) -> pl.DataFrame:
    store = open_store(url)
    try:
        with store.session() as session:
            rows = [(a.alert_id, a.scenario, a.key, a.ts.astimezone(UTC).replace(tzinfo=None),
                     a.trigger_event_id, a.value, list(a.evidence)) for a in session.query(Alert)]
    finally:
        store.engine.dispose()
    return pl.DataFrame(rows, schema=COLUMNS, orient="row").sort("alert_id")


def expected_alerts(scenario_text: str, events: pl.DataFrame) -> pl.DataFrame:
    alerts = assay.run(scenario_text, events)
    return alerts.select(COLUMNS).with_columns(pl.col("ts").dt.replace_time_zone(None)).sort("alert_id")


def same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.height == want.height, (got.height, want.height)
    assert got["alert_id"].to_list() == want["alert_id"].to_list()
    assert got.equals(want.with_columns(pl.col("ts").cast(got.schema["ts"])))


def run_worker(text: str, url: str, subject: str, **options) -> object:
    from assay.scenarios import load_scenarios
    from assay.streaming.worker import StreamWorker, WorkerOptions

    opts = WorkerOptions(url=NATS_URL, subject=subject, idle_exit_seconds=1.5, checkpoint_seconds=0.2, **options)
    store = open_store(url)
    worker = StreamWorker(load_scenarios(text), store, opts, log=lambda _line: None)
    try:
        return asyncio.run(worker.run(asyncio.Event()))
    finally:
        store.engine.dispose()


async def read_subject(stream: str, subject: str, expected: int,
                       match: Callable[[dict], bool] = lambda _record: True) -> list[dict]:
    """The records on ``subject`` that ``match`` keeps, once ``expected`` of them arrived (and
    whatever follows within a second); a stream holding many other subjects can take a
    while to deliver the first, so the wait is for the count, not for one quiet second."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, stream=stream)
        out: list[dict] = []
        deadline = time.monotonic() + 60
        while True:
            enough = len(out) >= expected
            try:
                msgs = await sub.fetch(500, timeout=1 if enough else 5)
            except (nats.errors.TimeoutError, TimeoutError):
                if enough or time.monotonic() > deadline:
                    return out
                continue
            for msg in msgs:
                record = json.loads(msg.data)
                if match(record):
                    out.append(record)
                await msg.ack()
    finally:
        await nc.close()


async def purge_subject(stream: str, subject: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().purge_stream(stream, subject=subject)
    finally:
        await nc.close()


def test_stream_gives_the_batch_alerts_with_the_same_ids(pg_url, nats_subject):
    purpose = f"fraud-{uuid.uuid4().hex[:6]}"
    text = scenarios(purpose)
    events = dataset(customers=1500, seed=5)
    want = expected_alerts(text, events)
    assert set(want["scenario"]) == {"trio", "pair-2h", "busy-hour", "spend-day", "shops-day"}
    edge = want.filter(pl.col("key").str.starts_with("edge-") & (pl.col("scenario") == "pair-2h"))
    assert sorted(edge["key"]) == ["edge-a", "edge-c"]  # exactly at the edge: in; one second past: out

    asyncio.run(publish_frame(events, url=NATS_URL, subject=nats_subject, partitions=4, batch=150))
    report = run_worker(text, pg_url, nats_subject, fetch=7)  # many small micro-batches
    assert report.rows == events.height and report.deadletters == 0 and report.checkpoints > 1
    same(stored_alerts(pg_url), want)
    published = asyncio.run(read_subject("ASSAY_ALERTS", f"assay.alerts.{purpose}", want.height))
    assert sorted({a["alert_id"] for a in published}) == want["alert_id"].to_list()
    asyncio.run(purge_subject("ASSAY_ALERTS", f"assay.alerts.{purpose}"))

    again = run_worker(text, pg_url, nats_subject)  # restarts from the checkpoints: nothing to do
    assert again.messages == 0 and again.rows == 0
    same(stored_alerts(pg_url), want)


def test_keys_other_than_the_partition_key_are_refused(pg_url):
    from assay.errors import UsageError

    text = "version: 1\npurpose: aml\nscenarios:\n  - {id: fan, kind: aggregate, key: counterparty, " \
           "metric: distinct(entity), op: '>=', threshold: 3, window: 1h}\n"
    with pytest.raises(UsageError, match="fan.*partition key 'entity'.*--key"):
        run_worker(text, pg_url, "nothing.events")


async def publish_raw(prefix: str, partition: int, payloads: list[tuple[bytes, dict]]) -> None:
    from assay.streaming.publish import stream_name

    nc = await nats.connect(NATS_URL)
    subject = f"{prefix}.{partition}"
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream_name(prefix), subjects=[f"{prefix}.>"])
        for data, headers in payloads:
            await js.publish(subject, data, headers=headers)
    finally:
        await nc.close()


def test_bad_and_late_data_go_to_the_dead_letter_subject(pg_url, nats_subject):
    purpose = f"fraud-{uuid.uuid4().hex[:6]}"
    text = scenarios(purpose) + """
  - id: score-sum
    kind: aggregate
    metric: sum(score)
    op: ">"
    threshold: 10
    window: 1d
"""
    good = pl.DataFrame({"event_id": ["g1", "g2"], "entity": ["k", "k"],
                         "ts": [datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 2, 1, tzinfo=UTC)],
                         "item": ["product-001", "product-002"], "amount": [1.0, 1.0], "score": [4.0, 7.0]})
    late = good[:1].with_columns(pl.lit("late1").alias("event_id"), pl.lit(datetime(2024, 1, 1, tzinfo=UTC))
                                 .cast(good.schema["ts"]).alias("ts"))
    bad_ts = pl.DataFrame({"event_id": ["b1"], "entity": ["k"], "ts": ["yesterday"], "item": ["a"], "score": [1.0]})
    no_score_column = good.drop("score")
    no_entity = pl.DataFrame({"event_id": ["n1"], "ts": [datetime(2024, 1, 3, tzinfo=UTC)]})
    no_score = good[1:].with_columns(pl.lit("s1").alias("event_id"), pl.lit(None, dtype=pl.Float64).alias("score"))
    after = good.with_columns(pl.col("event_id") + "-after", pl.col("ts") + timedelta(days=1))
    subject = f"{nats_subject}.0"
    headers = {"assay-format": "arrow-ipc"}
    asyncio.run(publish_raw(nats_subject, 0, [
        (encode(good), headers), (b"not arrow at all", headers), (encode(late), headers),
        (encode(bad_ts), headers), (encode(no_entity), headers), (encode(no_score), headers),
        (encode(no_score_column), headers),
        (encode(good), {"assay-format": "json"}), (encode(after), headers),
    ]))
    report = run_worker(text, pg_url, nats_subject, partitions=[0])
    dead = asyncio.run(read_subject("ASSAY_DEADLETTER", "assay.deadletter", 7,
                                    lambda d: d.get("source", "").startswith(subject)))
    reasons = {d["reason"].split(":")[0]: d for d in dead}
    assert len(dead) == report.deadletters == 7, dead
    assert "not an Arrow IPC batch" in reasons
    assert reasons["too late"]["event"]["event_id"] == "late1"
    assert reasons["column 'ts'"]["event"]["ts"] == "yesterday" and reasons["column 'ts'"]["row"] == 1
    assert any("required column 'entity' is missing" in d["reason"] for d in dead)
    assert any("scenario 'score-sum' needs a number" in d["reason"] and d["event"]["event_id"] == "s1"
               for d in dead)
    assert any("unknown message format 'json'" in d["reason"] for d in dead)
    assert any("column the scenarios read 'score' is missing" in d["reason"] and d["rows"] == 2 for d in dead)
    # the worker went on: the rows after the bad messages were evaluated
    assert report.rows == 5
    got = stored_alerts(pg_url)
    assert "g2-after" in got.filter(pl.col("scenario") == "pair-2h")["trigger_event_id"].to_list()


def test_a_lost_delivery_is_noticed_and_nothing_after_it_is_processed():
    from types import SimpleNamespace

    from assay.streaming.partitions import Partition, in_order

    def msg(delivery: int) -> SimpleNamespace:  # the two fields in_order reads of a JetStream message
        return SimpleNamespace(metadata=SimpleNamespace(sequence=SimpleNamespace(consumer=delivery)))

    part = Partition(0)
    batch = [msg(1), msg(2), msg(3)]
    assert in_order(part, batch) == (batch, False) and part.delivered == 3
    kept, gap = in_order(part, [msg(4), msg(6), msg(7)])  # delivery 5 never arrived
    assert gap and [m.metadata.sequence.consumer for m in kept] == [4] and part.delivered == 4
