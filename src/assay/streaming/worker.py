"""``assay stream``: the detection worker on NATS JetStream.

For each partition the worker owns, a durable pull consumer delivers the partition's
messages in order. One engine serves every partition (each keeps its own watermark and
state inside it, SPEC): what the partitions fetched while the engine was busy is screened
together (bad rows go to the dead-letter subject with a reason), pushed through the engine
in one pass, and its alerts are written to the store (idempotent by ``alert_id``) and
published on ``assay.alerts.<purpose>``.

Delivery: every few seconds, and on SIGTERM, the worker writes a checkpoint (engine
snapshot, mostly a delta on the previous ones, + last stream sequence) and only then
acknowledges the messages it covers
(``AckPolicy.ALL``). On start it restores the checkpoint and re-creates the durable
consumer from the next sequence: whatever was processed after the checkpoint is
replayed into the same state and gives the same alerts, which the store already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sqlalchemy.exc import DBAPIError

from ..alerts import alert_json_lines
from ..engine import Engine
from ..errors import UsageError
from ..event_rows import kernels as event_rows_kernels
from ..key_index import index_kernels
from ..lazy import kernels
from ..scenarios import ScenarioFile
from ..store import IngestReport, Store, ingest_alerts
from .checkpointing import Captured, Checkpointing, NotCaptured
from .intake import Message, dead_letter, prepare, read_message
from .partitions import Partition, PullFeed, in_order
from .publish import stream_name

try:
    import nats
    from nats.js import api
    from nats.js.errors import BadRequestError, NotFoundError
except ImportError as exc:  # pragma: no cover - only without the extra
    raise UsageError("streaming needs the 'stream' extra: pip install 'assay[stream]'") from exc

DEADLETTER_SUBJECT = "assay.deadletter"
ALERTS_PREFIX = "assay.alerts"


@dataclass
class WorkerOptions:
    url: str = "nats://127.0.0.1:4222"
    subject: str = "assay.events"
    partitions: list[int] | None = None  # None: every partition the stream holds
    consumer: str | None = None  # durable consumer prefix; default assay-<purpose>
    key: str = "entity"
    lateness_us: int = 0
    fetch: int = 1000  # messages per fetch at most: a worker that fell behind catches up in big batches
    checkpoint_seconds: float = 10.0
    idle_exit_seconds: float | None = None
    status_seconds: float = 30.0  # a status line this often (progress on a long backfill)


@dataclass
class WorkerReport:
    rows: int = 0
    messages: int = 0
    alerts: int = 0
    new_alerts: int = 0
    deadletters: int = 0
    checkpoints: int = 0
    partitions: list[int] = field(default_factory=list)


# Alerts go to the store in one transaction per this many seconds (or alerts) at most: a
# transaction has a fixed cost (duplicate check, cases, two audit entries) of a few ms
SINK_SECONDS = 0.05
SINK_ALERTS = 5000
PUBLISH_ACK_SECONDS = 5.0  # an alert not acknowledged by JetStream in this time is published again
LINGER_SECONDS = 0.01  # a push waits this long at most for the other partitions' messages
# and starts this long after the one before at the earliest (50 ms measured p50 80-88 ms and
# p99 144-241 ms at 50,000 events/s, 30 ms p50 63-74 and p99 143-189, for ~0.1 more core)
PUSH_INTERVAL_SECONDS = 0.03
STOP_SECONDS = 10.0  # after a failure, the other tasks' loops have this long to end before they are cancelled
CAUGHT_UP_SECONDS = 1.0  # no message for this long: the partition has caught up with its stream
# NATS disconnects a client with more than 64 MB pending (a "slow consumer"), and what was
# in flight is lost until its ack wait expires: fetches together stay well below that
FETCH_BYTES = 32 * 1024 * 1024
OUTPUT_RETENTION_SECONDS = 7 * 86400  # of ASSAY_ALERTS and ASSAY_DEADLETTER, when the worker creates them


def _fail(waiting: list[asyncio.Future], exc: BaseException) -> None:  # type: ignore[type-arg]
    """Wake those still waiting with the error (a cancellation wakes them as a stop)."""
    for done in waiting:
        if not done.done():
            done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("the worker stopped"))


class StreamWorker(Checkpointing):
    def __init__(self, scenarios: ScenarioFile, store: Store, options: WorkerOptions,
                 log: Callable[[str], None] = print):
        wrong = [s.id for s in scenarios.scenarios if s.key != options.key]
        if wrong:
            raise UsageError(
                f"scenario(s) {', '.join(wrong)} are keyed by another column than the stream's partition key "
                f"'{options.key}': a key's rows must all reach one worker. Publish a stream partitioned by "
                "that column (assay publish --key COLUMN) and run a worker on it with --key COLUMN")
        self.spec = scenarios
        self.store = store
        self.options = options
        self.log = log
        self.consumer = options.consumer or f"assay-{scenarios.purpose}"
        self.stream = stream_name(options.subject)
        self.report = WorkerReport()
        self.connection = 0
        # SQLite takes one writer at a time; PostgreSQL stores alerts while a checkpoint of
        # tens of megabytes is written (else the alerts of that moment wait for it)
        self.store_lock: threading.Lock | contextlib.nullcontext = \
            threading.Lock() if store.engine.dialect.name == "sqlite" else contextlib.nullcontext()
        self.pending: list[pl.DataFrame] = []  # alerts found, not yet stored
        self.pending_rows = 0
        self.pending_since = 0.0  # when the oldest of them was found
        self.pending_lock = threading.Lock()
        self.sink_lock = asyncio.Lock()
        self.engine = Engine(scenarios, lateness_us=options.lateness_us)
        # the engine's own thread (a push already uses every core): micro-batches, captures
        self.engine_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assay-engine")
        # what partitions fetched while the engine was busy: pushed together next
        self.inbox: list[tuple[Partition, list, asyncio.Future]] = []  # type: ignore[type-arg]
        self.inbox_ready = asyncio.Event()
        self.capture_requests: list[tuple[Partition, asyncio.Future]] = []  # checkpoints waiting for the engine
        self.publishing: asyncio.Future | None = None  # the latest micro-batch's publish (each waits for the one before)
        self.parts: list[Partition] = []
        self.nc = None  # the NATS connection, while running
        self.last_activity = time.monotonic()
        self.pushed_at = 0.0
        self.needed = set().union(*(s.columns() for s in scenarios.scenarios))

    # --- set-up --------------------------------------------------------------
    async def _ensure_output_streams(self, js) -> None:  # type: ignore[no-untyped-def]
        for name, subjects in (("ASSAY_ALERTS", [f"{ALERTS_PREFIX}.>"]), ("ASSAY_DEADLETTER", [DEADLETTER_SUBJECT])):
            try:
                await js.stream_info(name)
            except NotFoundError:
                try:
                    # the store is the record; the streams are for consumers, a week back
                    await js.add_stream(name=name, subjects=subjects, duplicate_window=600.0,
                                        max_age=OUTPUT_RETENTION_SECONDS)
                except BadRequestError as exc:  # an operator's own stream already captures them
                    self.log(f"note: not creating stream {name}: {exc.description}")

    async def _partitions(self, js) -> list[int]:  # type: ignore[no-untyped-def]
        if self.options.partitions is not None:
            return self.options.partitions
        info = await js.stream_info(self.stream, subjects_filter=f"{self.options.subject}.>")
        found = sorted(int(s.rsplit(".", 1)[1]) for s in (info.state.subjects or {})
                       if s.rsplit(".", 1)[1].isdigit())
        if not found:
            raise UsageError(f"stream {self.stream} holds no partition subjects yet; say which with --partitions")
        return found

    async def _subscribe(self, js, part: Partition) -> None:  # type: ignore[no-untyped-def]
        """A new durable consumer from the partition's next sequence, and ``part.feed`` on it
        (the old feed closed)."""
        if part.feed is not None:
            await part.feed.close()
            part.feed = None
        durable = f"{self.consumer}-{part.number}"
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(self.stream, durable)
        part.delivered = 0
        part.connection = self.connection
        start = {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": part.done_seq + 1} \
            if part.done_seq else {"deliver_policy": api.DeliverPolicy.ALL}
        config = api.ConsumerConfig(durable_name=durable, filter_subject=f"{self.options.subject}.{part.number}",
                                    ack_policy=api.AckPolicy.ALL, ack_wait=600.0, max_ack_pending=1_000_000,
                                    **start)
        await js.add_consumer(self.stream, config)
        part.feed = await PullFeed(self.nc, self.stream, durable, self._fetch_limit(part)).start()

    def _fetch_limit(self, part: Partition) -> int:
        """Messages a partition's feed holds and asks for at most: a share of FETCH_BYTES."""
        if not part.message_bytes:
            return min(self.options.fetch, 16)  # sizes unknown yet: a few messages first
        budget = FETCH_BYTES // max(len(self.parts), 1)
        return max(1, min(self.options.fetch, int(budget / part.message_bytes)))

    # --- the loop ------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> WorkerReport:
        async def reconnected() -> None:
            # pull requests in flight died with the old connection, and messages delivered
            # to it count as delivered until their ack wait: subscribe again after done_seq
            self.connection += 1
            self.log("reconnected to NATS; partitions resume after their last processed message")

        async def connection_error(exc: Exception) -> None:
            # nats-py's own handler logs each failed reconnect attempt with its traceback
            self.log(f"NATS connection: {type(exc).__name__}: {exc or 'connection lost'}; reconnecting")

        nc = self.nc = await nats.connect(self.options.url, max_reconnect_attempts=-1, reconnected_cb=reconnected,
                                          error_cb=connection_error)
        try:
            js = nc.jetstream()
            try:
                await js.stream_info(self.stream)
            except NotFoundError:
                raise UsageError(f"no JetStream stream {self.stream} for subject {self.options.subject}.>: "
                                 "publish events first (assay publish)") from None
            await self._ensure_output_streams(js)
            numbers = await self._partitions(js)
            self.report.partitions = numbers
            self.parts = [await asyncio.to_thread(self._restore, n) for n in numbers]
            for part in self.parts:
                if not part.full_bytes:  # a new partition: its first full state is the empty one
                    await self._save(part, js, Captured(self.engine.capture(partition=part.number), False,
                                                        part.done_seq, part.rows, None))
            await asyncio.to_thread(kernels.warm_up, frozenset(s.kind for s in self.spec.scenarios))
            await asyncio.to_thread(index_kernels.warm_up)
            await asyncio.to_thread(event_rows_kernels.warm_up)
            # What start-up made (modules, Numba's and SQLAlchemy's registries, the restored
            # state) lives as long as the worker: out of the cycle collector's full passes,
            # each of which walked it all and paused every thread for 40-160 ms
            gc.collect()
            gc.freeze()
            # partitions take turns to checkpoint: a pause of the engine and a write at a time
            for i, part in enumerate(self.parts):
                part.saved_at = time.monotonic() - self.options.checkpoint_seconds * i / len(self.parts)
            for part in self.parts:
                await self._subscribe(js, part)
            self.log(f"consumer {self.consumer}: partitions {numbers} of stream {self.stream}")
            tasks = [asyncio.create_task(self._consume(js, part, stop)) for part in self.parts]
            if self.options.idle_exit_seconds is not None:
                tasks.append(asyncio.create_task(self._idle_watch(stop)))
            tasks.append(asyncio.create_task(self._sink(js, stop)))
            pushing = asyncio.create_task(self._push_loop(js))
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                if self.publishing is not None:  # stopping on a failure: no publish is waited for
                    self.publishing.cancel()
                    await asyncio.gather(self.publishing, return_exceptions=True)
                raise
            finally:
                stop.set()
                # After a failure the other tasks end here (their loops stop within a fetch's
                # timeout; a micro-batch in hand is pushed), not left to fail on the closed
                # connection and be reported at exit. After a stop they have all returned, and
                # the push loop is idle: every partition's last micro-batch was pushed
                await asyncio.wait(tasks, timeout=STOP_SECONDS)
                for task in (*tasks, pushing):
                    task.cancel()
                await asyncio.gather(*tasks, pushing, return_exceptions=True)
            await self._published()
            for part in self.parts:  # drain: what was processed is stored, checkpointed and acknowledged
                await self._checkpoint(part, js, wait=True)
            await nc.flush()
        finally:
            self.engine_pool.shutdown(wait=True)
            await nc.close()
        return self.report

    async def _idle_watch(self, stop: asyncio.Event) -> None:
        assert self.options.idle_exit_seconds is not None
        while not stop.is_set():
            if time.monotonic() - self.last_activity > self.options.idle_exit_seconds:
                stop.set()
                return
            await asyncio.sleep(0.1)

    async def _consume(self, js, part: Partition, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
        try:
            await self._consume_feed(js, part, stop)
        finally:
            if part.feed is not None:
                await part.feed.close()

    async def _consume_feed(self, js, part: Partition, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
        while not stop.is_set():
            if part.connection != self.connection:
                await self._subscribe(js, part)
            msgs = await part.feed.take()
            if stop.is_set():
                break  # what was just taken is not acknowledged: a restart fetches it again
            msgs, gap = in_order(part, msgs)
            if msgs:
                self.last_activity = time.monotonic()
                done = asyncio.get_running_loop().create_future()
                self.inbox.append((part, msgs, done))
                self.inbox_ready.set()
                await done  # pushed, its alerts on their way (or the error that stops the worker)
                self.last_activity = time.monotonic()  # idle means no messages, not slow work
            now = time.monotonic()
            if msgs:
                part.busy_at = now
                size = sum(len(m.data) for m in msgs) / len(msgs)
                part.message_bytes = size if not part.message_bytes else 0.8 * part.message_bytes + 0.2 * size
                part.feed.limit = self._fetch_limit(part)
            if gap:  # a delivery never reached us (e.g. dropped as a slow consumer): start again after done_seq
                self.log(f"partition {part.number}: a delivery was lost in transit; resuming after stream "
                         f"sequence {part.done_seq}")
                await self._subscribe(js, part)
            # every --checkpoint-every while busy, and sooner (but not more than four times as
            # often) when the partition has caught up: its messages are acknowledged, and an
            # idle moment is the cheapest time to write its state
            since = now - part.saved_at
            caught_up = now - part.busy_at >= CAUGHT_UP_SECONDS and since >= self.options.checkpoint_seconds / 4
            if part.done_seq > part.saved_seq and (since >= self.options.checkpoint_seconds or caught_up):
                await self._checkpoint(part, js)

    async def _push_loop(self, js) -> None:  # type: ignore[no-untyped-def]
        """Push what the partitions fetched, all of it at once, and publish its alerts."""
        try:
            await self._push_all(js)
        finally:  # stopped or failed: nobody waits for a push or a capture that will not come
            _fail([done for _, _, done in self.inbox], RuntimeError("the worker stopped"))
            self.inbox = []
            _fail([done for _, done in self.capture_requests], NotCaptured())
            self.capture_requests = []

    async def _push_all(self, js) -> None:  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        started_at = 0.0  # when the last push started (``self.pushed_at``: when it ended)
        while True:
            await self.inbox_ready.wait()
            if self.inbox:
                # the other partitions' fetches are on their way: one push for all is cheaper
                # than one each (a push has a fixed cost), and waiting LINGER_SECONDS at most
                # costs less latency than a second push would
                linger = time.monotonic() + LINGER_SECONDS
                while len({part.number for part, _, _ in self.inbox}) < len(self.parts) and time.monotonic() < linger:
                    await asyncio.sleep(0.002)
                # A micro-batch costs the engine a few milliseconds whatever its size, and its
                # keys' windows (a hot key's window is read whole): pushing more often than
                # every PUSH_INTERVAL_SECONDS buys little latency for much CPU
                rest = started_at + PUSH_INTERVAL_SECONDS - time.monotonic()
                if rest > 0:
                    await asyncio.sleep(rest)
                started_at = time.monotonic()
            self.inbox_ready.clear()
            items, self.inbox = self.inbox, []
            if items:
                await self._push(loop, js, items)
            if self.capture_requests:
                # between two micro-batches, after the last one's alerts were handed to the
                # publisher and the sink: a checkpoint waits for those before it is stored
                requests, self.capture_requests = self.capture_requests, []
                try:
                    taken = await loop.run_in_executor(self.engine_pool, self._capture_all,
                                                       [part for part, _ in requests])
                except BaseException as exc:
                    _fail([done for _, done in requests], exc)
                    raise
                for (_, done), one in zip(requests, taken, strict=True):
                    done.set_result(one)

    async def _push(self, loop, js, items: list) -> None:  # type: ignore[no-untyped-def,type-arg]
        try:
            if self.publishing is not None and self.publishing.done():
                self.publishing.result()  # a publish failed: the worker stops
            alerts, dead = await loop.run_in_executor(
                self.engine_pool, self._process, [(part, msgs) for part, msgs, _ in items])
        except BaseException as exc:
            _fail([done for _, _, done in items], exc)
            raise
        self.pushed_at = time.monotonic()
        # Published at once, in order, while the engine goes on with the next micro-batch
        # (not waiting for JetStream's acknowledgements); stored within SINK_SECONDS. A
        # checkpoint waits for both before it covers these rows.
        if alerts.height or dead:
            self.publishing = asyncio.ensure_future(self._publish_after(self.publishing, js, alerts, dead))
        for _, _, done in items:
            done.set_result(None)

    async def _publish_after(self, before: asyncio.Future | None, js, alerts: pl.DataFrame,  # type: ignore[no-untyped-def]
                             dead: list[dict]) -> None:
        if before is not None:
            await before
        await self._publish(js, alerts, dead)

    async def _published(self) -> None:
        """Wait until everything found so far is published (raises when a publish failed)."""
        if self.publishing is not None:
            await self.publishing

    def _process(self, batches: list[tuple[Partition, list]]) -> tuple[pl.DataFrame, list[dict]]:  # type: ignore[type-arg]
        messages: list[Message] = []
        owners: list[int] = []  # each message's partition
        dead: list[dict] = []
        parts = {part.number: part for part, _ in batches}
        for part, msgs in batches:
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                if seq <= part.done_seq:
                    continue  # delivered again; already in the engine's state
                part.done_seq = seq
                part.last_msg = msg
                with self.pending_lock:
                    self.report.messages += 1
                read = read_message(msg.data, msg.headers, f"{msg.subject}#{seq}", self.options.key, self.needed,
                                    dead)
                if read is not None and read.frame.height:
                    messages.append(read)
                    owners.append(part.number)
        rows = prepare(messages, self.engine, dead, keep_message=True) if messages else None
        if rows is None:
            return pl.DataFrame(), dead
        rows = rows.with_columns(pl.Series("_m", np.asarray(owners, np.int64)).gather(rows["_m"]).alias("_p"))
        pushed = {int(number): frame.drop("_m", "_p")  # type: ignore[call-overload]
                  for (number,), frame in rows.partition_by("_p", as_dict=True, maintain_order=True).items()}
        for number, frame in pushed.items():
            parts[number].rows += frame.height
        with self.pending_lock:
            self.report.rows += rows.height
        result = self.engine.push_many(pushed)
        for row in result.late.iter_rows(named=True):
            dead.append(dead_letter(row.pop("reason"), row))
        if result.alerts.height:
            with self.pending_lock:
                if not self.pending:
                    self.pending_since = time.monotonic()
                self.pending.append(result.alerts)
                self.pending_rows += result.alerts.height
        return result.alerts, dead

    async def _publish(self, js, alerts: pl.DataFrame, dead: list[dict]) -> None:  # type: ignore[no-untyped-def]
        """Publish alerts and dead letters, and wait until JetStream has them all.

        An acknowledgement lost with a connection never comes: what is not acknowledged
        within PUBLISH_ACK_SECONDS is published again (the same ``Nats-Msg-Id``, so the
        stream keeps one copy), for as long as it takes NATS to come back.
        """
        messages: list[tuple[str, bytes, dict[str, str]]] = []
        subject = f"{ALERTS_PREFIX}.{self.spec.purpose}"
        if alerts.height:
            messages += [(subject, line.encode(), {"Nats-Msg-Id": alert_id})
                         for alert_id, line in zip(alerts["alert_id"], alert_json_lines(alerts), strict=True)]
        for record in dead:
            ident = f"{record.get('source')}:{record.get('row', '')}:{record['reason'][:40]}"
            messages.append((DEADLETTER_SUBJECT, json.dumps(record, default=str).encode(), {"Nats-Msg-Id": ident}))
        self.report.deadletters += len(dead)
        attempt = 0
        while messages:
            futures = [await js.publish_async(s, data, headers=headers) for s, data, headers in messages]
            await asyncio.wait(futures, timeout=PUBLISH_ACK_SECONDS)
            acknowledged = [f.done() and not f.cancelled() and f.exception() is None for f in futures]
            for future in futures:
                future.cancel()  # a late acknowledgement is not waited for (and frees its slot)
            messages = [m for m, ok in zip(messages, acknowledged, strict=True) if not ok]
            attempt += 1
            if messages:
                self.log(f"NATS acknowledged {acknowledged.count(True):,} of {len(acknowledged):,} messages "
                         f"within {PUBLISH_ACK_SECONDS:.0f} s; publishing the rest again (attempt {attempt + 1})")

    async def _sink(self, js, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
        """Alerts of every partition go to the store together, within SINK_SECONDS of being found."""
        status_at, rows_before = time.monotonic(), 0
        while not stop.is_set():
            with self.pending_lock:
                due = bool(self.pending) and (self.pending_rows >= SINK_ALERTS
                                              or time.monotonic() - self.pending_since >= SINK_SECONDS)
            if due:
                await self._flush(js)
            await asyncio.sleep(0.005)
            if time.monotonic() - status_at >= self.options.status_seconds:
                r = self.report
                rate = (r.rows - rows_before) / (time.monotonic() - status_at)
                self.log(f"{r.rows:,} rows ({rate:,.0f}/s), {r.alerts:,} alerts, {r.deadletters:,} dead letters, "
                         f"{r.checkpoints:,} checkpoints")
                status_at, rows_before = time.monotonic(), r.rows

    async def _flush(self, js) -> None:  # type: ignore[no-untyped-def]
        """Store the alerts found so far (before a checkpoint may cover their rows; they were
        published when found: a subscriber need not wait for the store's transaction)."""
        async with self.sink_lock:
            with self.pending_lock:
                batch, self.pending, self.pending_rows = self.pending, [], 0
            if not batch:
                return
            alerts = pl.concat(batch) if len(batch) > 1 else batch[0]
            ingested = await asyncio.to_thread(self._ingest, alerts)
            self.report.alerts += alerts.height
            self.report.new_alerts += ingested.new_alerts

    def _ingest(self, alerts: pl.DataFrame) -> IngestReport:
        """Idempotent; retried when another worker's transaction got in the way (a conflict)."""
        for attempt in range(5):
            try:
                with self.store_lock:
                    return ingest_alerts(self.store, alerts, actor=f"assay stream {self.consumer}")
            except DBAPIError as exc:  # e.g. two workers opening the first audit entry at once
                if attempt == 4:
                    raise
                self.log(f"store conflict, retrying: {type(exc.orig).__name__}")
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")


__all__ = ["StreamWorker", "WorkerOptions", "WorkerReport"]
