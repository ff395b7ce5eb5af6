"""A worker's partitions: what it knows of each one's consumer, and delivery order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

from ..errors import UsageError


@dataclass
class Partition:
    number: int
    done_seq: int = 0  # last stream sequence pushed into the engine
    saved_seq: int = 0  # last stream sequence covered by the stored checkpoint
    rows: int = 0
    last_msg: object | None = None
    delivered: int = 0  # the current consumer's last delivery sequence seen (gaps mean lost deliveries)
    saved_at: float = field(default_factory=time.monotonic)
    busy_at: float = field(default_factory=time.monotonic)  # when messages last arrived
    message_bytes: float = 0.0  # running mean size of its messages, to size fetches
    connection: int = 0  # the connection its subscription was made on
    full_bytes: int = 0  # size of the stored full state (0: none yet), and of the deltas on top of it
    delta_bytes: int = 0
    saving: asyncio.Future | None = None  # the checkpoint being stored
    feed: PullFeed | None = None  # its messages, on the current consumer


FIRST_WAIT_SECONDS = 0.05  # ``PullFeed.take`` waits this long for a partition's next message
REQUEST_SECONDS = 30.0  # a pull request expires after this (the server then says so, and it is renewed)
STALE_SECONDS = 5.0  # a request this long past its expiry without an answer is taken as lost
RETRY_SECONDS = 0.1  # a request that ended sooner than this (an error) is renewed by the next take


class PullFeed:
    """A durable pull consumer's messages, delivered while the worker is busy.

    nats-py's ``fetch`` asks for messages once the caller is ready for them: what a stream
    stores while the engine works on a micro-batch waits on the server until then, and a
    fetch's short drain misses what is still in transit (measured at 50,000 events/s: a
    message was 185 ms old at its fetch when micro-batches took 100 ms). A feed keeps one pull
    request open instead (up to ``limit`` messages, ``REQUEST_SECONDS``): the server sends
    each message as it is stored, the feed keeps them, and ``take`` hands over all it has.
    A request that ends (its count delivered, expired, or an error status) is renewed, and
    never for more than ``limit`` messages beside those kept: a worker that falls behind
    holds a bounded backlog, as with fetches.
    """

    def __init__(self, nc, stream: str, durable: str, limit: int, prefix: str = "$JS.API"):  # type: ignore[no-untyped-def]
        self.nc = nc
        self.subject = f"{prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.limit = max(1, limit)  # messages kept and owed together, at most
        self.kept: list = []  # type: ignore[type-arg]
        self.arrived = asyncio.Event()
        self.owed = 0  # messages the open request may still deliver (0: none open)
        self.asked_at = 0.0
        self.sub = None
        self.inbox = ""

    async def start(self) -> PullFeed:
        self.inbox = self.nc.new_inbox()
        self.sub = await self.nc.subscribe(self.inbox, cb=self._arrive)
        await self._ask()
        return self

    async def close(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await self.sub.unsubscribe()
            self.sub = None

    async def take(self, timeout: float = FIRST_WAIT_SECONDS) -> list:  # type: ignore[type-arg]
        """What arrived since the last take; waits up to ``timeout`` for the first message."""
        if not self.kept:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout)
        out, self.kept = self.kept, []
        if self.owed and time.monotonic() - self.asked_at > REQUEST_SECONDS + STALE_SECONDS:
            self.owed = 0  # its end never came (a lost connection): ask again
        await self._ask()
        return out

    async def _arrive(self, msg) -> None:  # type: ignore[no-untyped-def]
        # the server's word on the request (no reply subject: not a stream message to ack)
        status = msg.headers.get("Status") if msg.headers and not msg.reply else None
        if status is None:
            self.kept.append(msg)
            self.arrived.set()
            self.owed -= 1
            if self.owed <= 0:
                self.owed = 0
                await self._ask()
        elif status != "100":  # 404/408/409: the request ended (100 is a heartbeat)
            self.owed = 0
            if time.monotonic() - self.asked_at >= RETRY_SECONDS:
                await self._ask()  # else (an error at once) the next take asks, not a tight loop

    async def _ask(self) -> None:
        room = self.limit - len(self.kept)
        if self.owed or room <= 0 or self.sub is None:
            return
        self.owed, self.asked_at = room, time.monotonic()
        request = {"batch": room, "expires": int(REQUEST_SECONDS * 1_000_000_000)}
        await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self.inbox)


def in_order(part: Partition, msgs: list) -> tuple[list, bool]:  # type: ignore[type-arg]
    """The messages up to the first missing delivery, and whether one is missing.

    Messages of a partition are processed strictly in order and anything at or below the
    last processed sequence counts as seen; a delivery lost between server and worker
    would otherwise be skipped for good. Delivery sequences of one consumer are consecutive.
    """
    for i, msg in enumerate(msgs):
        delivered = msg.metadata.sequence.consumer
        if delivered != part.delivered + 1:
            return msgs[:i], True
        part.delivered = delivered
    return msgs, False


def parse_partitions(text: str) -> list[int]:
    """``0-7``, ``0,2,4`` or ``0-3,6``."""
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        raise UsageError(f"--partitions {text}: use a range like 0-7 or a list like 0,2,4") from None
    if not out or min(out) < 0:
        raise UsageError(f"--partitions {text}: use a range like 0-7 or a list like 0,2,4")
    return sorted(set(out))


__all__ = ["Partition", "PullFeed", "in_order", "parse_partitions"]
