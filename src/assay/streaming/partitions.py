"""A worker's partitions: what it knows of each one's consumer, and delivery order."""

from __future__ import annotations

import asyncio
import contextlib
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


FIRST_WAIT_SECONDS = 0.05  # a fetch waits this long for a partition's next message
DRAIN_SECONDS = 0.005  # and this long for the server's answer on what else is there


async def fetch_ready(sub, batch: int) -> list:  # type: ignore[no-untyped-def,type-arg]
    """A partition's next messages, up to ``batch``: its first as soon as it comes, and the
    rest that the stream holds at that moment.

    nats-py's ``fetch(batch, timeout)`` returns early only with a full batch: a message that
    arrives while it waits stays there until the timeout (on a stream that is not behind,
    tens of milliseconds of latency for every row). Asking for one message, then for what is
    there without waiting (JetStream answers at once), delivers each message when it comes.
    """
    from nats.errors import TimeoutError as NatsTimeout

    try:
        msgs = await sub.fetch(1, timeout=FIRST_WAIT_SECONDS)
    except (NatsTimeout, TimeoutError):
        return []
    if batch > 1:
        with contextlib.suppress(NatsTimeout, TimeoutError):
            msgs += await sub.fetch(batch - 1, timeout=DRAIN_SECONDS)
    return msgs


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


__all__ = ["Partition", "fetch_ready", "in_order", "parse_partitions"]
