"""Publishing to a real NATS JetStream: partitioned by key, in arrival order, nothing lost."""

from __future__ import annotations

import asyncio

import polars as pl
import pytest

import assay
from assay.cli import main
from assay.streaming.wire import decode, partitions_of

nats = pytest.importorskip("nats")
URL = "nats://127.0.0.1:4222"


async def consume(subject: str, partition: int) -> list[pl.DataFrame]:
    nc = await nats.connect(URL)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{subject}.{partition}", durable=f"t{partition}")
        frames = []
        while True:
            try:
                msgs = await sub.fetch(100, timeout=1)
            except nats.errors.TimeoutError:
                return frames
            for msg in msgs:
                assert msg.headers["assay-format"] == "arrow-ipc"
                frames.append(decode(msg.data))
                await msg.ack()
    finally:
        await nc.close()


def test_publish_partitions_by_key_in_arrival_order(tmp_path, nats_subject, capsys):
    subject = nats_subject
    from assay.demo import generate

    events, _ = generate(customers=300, seed=2)
    path = tmp_path / "events.parquet"
    events.write_parquet(path)
    assert main(["publish", str(path), "--nats", URL, "--subject", subject, "--partitions", "4",
                 "--batch", "500"]) == 0
    assert f"published {events.height:,} rows" in capsys.readouterr().out
    original = assay.read_events(path).events.drop("_file", "_row")
    expected_part = partitions_of(original["entity"], 4)
    total = 0
    for p in range(4):
        got = pl.concat(asyncio.run(consume(subject, p)))
        total += got.height
        mine = original.filter(pl.Series(expected_part == p))
        assert got.select(mine.columns).equals(mine)  # same rows, same arrival order
    assert total == original.height


def test_partition_of_a_key_is_stable():
    keys = pl.Series(["c000001", "c000002", "c000001", "ü"])
    first = partitions_of(keys, 8)
    assert first[0] == first[2] and list(first) == list(partitions_of(keys, 8))
    assert list(partitions_of(pl.Series(["c000001"]), 8)) == [first[0]]
