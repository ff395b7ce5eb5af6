"""``assay publish``: load event files into a JetStream stream, partitioned by key."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from ..errors import UsageError
from .wire import FORMAT, encode, partitions_of

try:
    import nats
    from nats.js.errors import NotFoundError
except ImportError as exc:  # pragma: no cover - only without the extra
    raise UsageError("streaming needs the 'stream' extra: pip install 'assay[stream]'") from exc


@dataclass
class PublishReport:
    rows: int
    messages: int
    partitions: int
    stream: str


def stream_name(subject: str) -> str:
    return subject.upper().replace(".", "_").replace("*", "").replace(">", "")


async def publish_frame(events: pl.DataFrame, *, url: str, subject: str, partitions: int = 8, batch: int = 1000,
                        key: str = "entity") -> PublishReport:
    """Publish rows in arrival order; each key's rows go to subject.<partition> in order."""
    if partitions < 1 or batch < 1:
        raise UsageError("--partitions and --batch must be at least 1")
    if key not in events.columns:
        raise UsageError(f"--key {key}: the events have no column '{key}'")
    rows = events.drop([c for c in events.columns if c.startswith("_")])
    part = partitions_of(rows[key], partitions)
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        name = stream_name(subject)
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(name=name, subjects=[f"{subject}.>"])
        messages = 0
        pending = []
        for p in range(partitions):
            mine = rows.filter(pl.Series(part == p))
            for start in range(0, mine.height, batch):
                chunk = mine[start:start + batch]
                pending.append(await js.publish_async(
                    f"{subject}.{p}", encode(chunk),
                    headers={"assay-format": FORMAT, "assay-rows": str(chunk.height),
                             "assay-key": key}))
                messages += 1
                if len(pending) >= 256:
                    await asyncio.gather(*pending)
                    pending.clear()
        if pending:
            await asyncio.gather(*pending)
        await js.publish_async_completed()
    finally:
        await nc.close()
    return PublishReport(rows.height, messages, partitions, name)


def publish(sources: object, *, url: str, subject: str, partitions: int = 8, batch: int = 1000,
            mapping: Mapping[str, str] | None = None, key: str = "entity") -> PublishReport:
    from ..events import read_events

    events = read_events(sources, mapping=mapping).events
    return asyncio.run(publish_frame(events, url=url, subject=subject, partitions=partitions, batch=batch,
                                     key=key))
