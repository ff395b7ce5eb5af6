"""A stream worker's checkpoints: each partition's state captured between two micro-batches,
then serialized, stored and acknowledged in the background, and restored on start.

A checkpoint covers the rows pushed up to its capture; it is stored only once their alerts
are published and stored, and acknowledges the last message it covers (``AckPolicy.ALL``).
Capturing happens on the engine's thread, in the push loop, so a partition never waits for
its checkpoint: it goes on fetching while the state is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine import CapturedState, Engine
from ..errors import AssayError, UsageError
from ..store import Store
from .checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from .partitions import Partition

if TYPE_CHECKING:
    from .worker import WorkerReport

# A partition's deltas are replaced by a full state once they outgrow it, or this size when
# the state is smaller: a full state costs the engine a pause (and the machine a large write),
# and restoring a small state with up to this many bytes of deltas takes a second or two
FULL_AFTER_BYTES = 256 * 1024 * 1024
# A checkpoint is serialized a few milliseconds of work at a time, each followed by a pause
# this many times as long: the micro-batches go on between them (in one burst, the p99
# latency of a busy stream doubled around it)
SERIALIZE_PACE = 2.0
# while the worker has pushed a micro-batch this recently: with none to protect (a partition
# that caught up, a drain), a checkpoint is written at full speed
BUSY_SECONDS = 0.25


@dataclass
class Captured:
    """A partition's state taken for a checkpoint, and the stream position it covers."""

    state: CapturedState
    delta: bool
    seq: int
    rows: int
    msg: object | None  # the last message it covers (acknowledged once stored)


class NotCaptured(Exception):
    """The worker stopped before the push loop took a checkpoint's state."""


class Checkpointing:
    """The checkpoint half of ``StreamWorker`` (which provides these attributes)."""

    engine: Engine
    engine_pool: ThreadPoolExecutor
    store: Store
    store_lock: threading.Lock | contextlib.nullcontext  # type: ignore[type-arg]
    consumer: str
    stream: str
    capture_requests: list[tuple[Partition, asyncio.Future]]  # type: ignore[type-arg]
    inbox_ready: asyncio.Event
    report: WorkerReport
    pushed_at: float  # when the last micro-batch was pushed (time.monotonic)

    async def _published(self) -> None:
        raise NotImplementedError

    async def _flush(self, js) -> None:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def _restore(self, number: int) -> Partition:
        part = Partition(number)
        saved = load_checkpoint(self.store, self.consumer, number)
        if saved is not None:
            if saved.stream != self.stream:
                raise UsageError(f"consumer '{self.consumer}' partition {number} has a checkpoint on stream "
                                 f"{saved.stream}, not {self.stream}: use another --consumer")
            try:
                for state in (saved.state, *saved.deltas):
                    self.engine.restore(state, number)
            except (AssayError, ValueError) as exc:
                raise UsageError(f"the checkpoint of consumer '{self.consumer}' partition {number} was written "
                                 f"for other scenarios ({exc}); use another --consumer, or --reset to start "
                                 "over from the stream's beginning") from None
            part.done_seq = part.saved_seq = saved.last_seq
            part.rows = saved.rows
            part.full_bytes, part.delta_bytes = saved.size()
        return part

    async def _checkpoint(self, part: Partition, js, *, wait: bool = False) -> None:  # type: ignore[no-untyped-def]
        """Checkpoint the partition: its state is captured by the push loop between two
        micro-batches, then serialized, stored and acknowledged in the background while the
        partition goes on. ``wait``: now, and before returning (on a stop: the push loop has
        ended, the engine is this task's). One save at a time per partition: deltas are stored
        in the order they were taken."""
        if part.saving is not None:
            if not (wait or part.saving.done()):
                return
            saving, part.saving = part.saving, None
            await saving  # raises when the save failed: the worker stops, a restart resumes from the store
        if part.done_seq <= part.saved_seq or part.last_msg is None:
            return
        if wait:
            taken = await asyncio.get_running_loop().run_in_executor(self.engine_pool, self._capture, part)
            await self._save(part, js, taken)
        else:
            part.saving = asyncio.ensure_future(self._capture_and_save(part, js))

    async def _capture_and_save(self, part: Partition, js) -> None:  # type: ignore[no-untyped-def]
        done = asyncio.get_running_loop().create_future()
        self.capture_requests.append((part, done))
        self.inbox_ready.set()
        try:
            taken = await done
        except NotCaptured:
            return  # the worker stopped first; its drain checkpoints
        await self._save(part, js, taken)

    def _capture_all(self, parts: list[Partition]) -> list[Captured]:
        return [self._capture(part) for part in parts]

    def _capture(self, part: Partition) -> Captured:
        """On the engine thread: the partition's state and the stream position it covers. A
        delta (what changed since the last checkpoint) while the deltas stay smaller than the
        full state they apply to (or than FULL_AFTER_BYTES); else a new full state."""
        delta = part.full_bytes > 0
        state = self.engine.capture(delta, part.number)
        if delta and part.delta_bytes + state.size() > max(part.full_bytes, FULL_AFTER_BYTES):
            delta = False
            state = self.engine.capture(False, part.number)
        return Captured(state, delta, part.done_seq, part.rows, part.last_msg)

    async def _save(self, part: Partition, js, taken: Captured) -> None:  # type: ignore[no-untyped-def]
        await self._published()  # the alerts of the rows the checkpoint covers are published,
        await self._flush(js)  # and stored, first
        data = await asyncio.to_thread(taken.state.to_bytes, self._pace)
        checkpoint = Checkpoint(self.stream, taken.seq, taken.rows, data, delta=taken.delta)
        await asyncio.to_thread(self._store_checkpoint, part.number, checkpoint)
        if taken.msg is not None:
            await taken.msg.ack()  # type: ignore[attr-defined]  # AckPolicy.ALL: everything up to it
        if taken.delta:
            part.delta_bytes += len(data)
        else:
            part.full_bytes, part.delta_bytes = len(data), 0
        part.saved_seq = taken.seq
        part.saved_at = time.monotonic()
        self.report.checkpoints += 1

    def _pace(self) -> float:
        return SERIALIZE_PACE if time.monotonic() - self.pushed_at < BUSY_SECONDS else 0.0

    def _store_checkpoint(self, number: int, checkpoint: Checkpoint) -> None:
        # paced on PostgreSQL, like the serialization (SQLite's one writer would make the
        # alerts of that moment wait through the pauses)
        pace = 0.0 if self.store.engine.dialect.name == "sqlite" else self._pace
        with self.store_lock:  # taken in a worker thread, never while the event loop waits
            save_checkpoint(self.store, self.consumer, number, checkpoint, pace)


__all__ = ["FULL_AFTER_BYTES", "Captured", "Checkpointing", "NotCaptured"]
