"""Fetching a partition's messages from a real NATS JetStream (streaming/partitions.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from assay.streaming import partitions
from assay.streaming.publish import stream_name

nats = pytest.importorskip("nats")
URL = "nats://127.0.0.1:4222"


def test_fetch_ready_hands_over_messages_as_they_come(nats_subject, monkeypatch):
    """nats-py's ``fetch(batch, timeout)`` holds the messages that arrive while it waits
    until its batch is full or its timeout ends; ``fetch_ready`` returns with the first one
    and whatever the stream holds at that moment."""
    monkeypatch.setattr(partitions, "FIRST_WAIT_SECONDS", 20.0)

    async def main() -> tuple[list[bytes], float, list[bytes], list[bytes]]:
        nc = await nats.connect(URL)
        try:
            js = nc.jetstream()
            await js.add_stream(name=stream_name(nats_subject), subjects=[f"{nats_subject}.>"])
            sub = await js.pull_subscribe(f"{nats_subject}.0", durable="p0")
            for i in range(3):
                await js.publish(f"{nats_subject}.0", f"m{i}".encode())
            first = await partitions.fetch_ready(sub, 100)  # what is there: at once
            waiting = asyncio.ensure_future(partitions.fetch_ready(sub, 100))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            await js.publish(f"{nats_subject}.0", b"m3")
            second = await waiting  # the next one: as it comes, not after 20 s
            took = time.monotonic() - started
            monkeypatch.setattr(partitions, "FIRST_WAIT_SECONDS", 0.05)
            none = await partitions.fetch_ready(sub, 100)
            return [m.data for m in first], took, [m.data for m in second], [m.data for m in none]
        finally:
            await nc.close()

    first, took, second, none = asyncio.run(main())
    assert first == [b"m0", b"m1", b"m2"]
    assert second == [b"m3"] and took < 5
    assert none == []
