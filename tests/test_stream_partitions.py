"""A partition's feed of messages from a real NATS JetStream (streaming/partitions.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from assay.streaming import partitions
from assay.streaming.publish import stream_name

nats = pytest.importorskip("nats")
URL = "nats://127.0.0.1:4222"


async def _feed(nc, subject: str, limit: int):  # type: ignore[no-untyped-def]
    from nats.js import api

    js = nc.jetstream()
    stream = stream_name(subject)
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    await js.add_consumer(stream, api.ConsumerConfig(durable_name="p0", filter_subject=f"{subject}.0",
                                                     ack_policy=api.AckPolicy.ALL))
    return js, await partitions.PullFeed(nc, stream, "p0", limit).start()


def test_a_feed_holds_what_arrived_while_nobody_took_it(nats_subject):
    """Messages stored while the worker is busy reach the feed then, not at the next take:
    a take hands them over at once; one that waits returns with the next message as it comes."""

    async def main() -> tuple[list[bytes], float, list[bytes], float, list[bytes], int]:
        nc = await nats.connect(URL)
        try:
            js, feed = await _feed(nc, nats_subject, 100)
            for i in range(3):
                await js.publish(f"{nats_subject}.0", f"m{i}".encode())
            await asyncio.sleep(0.2)  # "busy": nobody takes
            arrived = len(feed.kept)
            started = time.monotonic()
            first = await feed.take(20.0)
            at_once = time.monotonic() - started
            waiting = asyncio.ensure_future(feed.take(20.0))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            await js.publish(f"{nats_subject}.0", b"m3")
            second = await waiting
            took = time.monotonic() - started
            none = await feed.take(0.05)
            await feed.close()
            return [m.data for m in first], at_once, [m.data for m in second], took, [m.data for m in none], arrived
        finally:
            await nc.close()

    first, at_once, second, took, none, arrived = asyncio.run(main())
    assert arrived == 3 and first == [b"m0", b"m1", b"m2"] and at_once < 1
    assert second == [b"m3"] and took < 5
    assert none == []


def test_a_feed_never_holds_more_than_its_limit_and_keeps_the_order(nats_subject):
    async def main() -> tuple[list[int], list[bytes]]:
        nc = await nats.connect(URL)
        try:
            js, feed = await _feed(nc, nats_subject, 3)
            for i in range(10):
                await js.publish(f"{nats_subject}.0", f"m{i}".encode())
            sizes, got = [], []
            while len(got) < 10:
                await asyncio.sleep(0.1)
                kept = len(feed.kept)
                msgs = await feed.take(1.0)
                sizes.append(max(kept, len(msgs)))
                got += [m.data for m in msgs]
            await feed.close()
            return sizes, got
        finally:
            await nc.close()

    sizes, got = asyncio.run(main())
    assert max(sizes) <= 3
    assert got == [f"m{i}".encode() for i in range(10)]


def test_an_expired_request_is_renewed(nats_subject, monkeypatch):
    """The server ends a pull request after its expiry (a 408 status): the feed asks again,
    so a message that comes after it still arrives without a take asking for it."""
    monkeypatch.setattr(partitions, "REQUEST_SECONDS", 0.3)

    async def main() -> tuple[int, list[bytes]]:
        nc = await nats.connect(URL)
        try:
            js, feed = await _feed(nc, nats_subject, 10)
            await asyncio.sleep(1.0)  # three expiries, nobody taking
            await js.publish(f"{nats_subject}.0", b"late")
            await asyncio.sleep(0.3)
            kept = len(feed.kept)
            msgs = await feed.take(1.0)
            await feed.close()
            return kept, [m.data for m in msgs]
        finally:
            await nc.close()

    kept, got = asyncio.run(main())
    assert kept == 1 and got == [b"late"]
