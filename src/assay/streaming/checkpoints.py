"""Checkpoints of stream workers in the store: per (consumer, partition), a full engine
state and the delta states written since.

A checkpoint is the engine's state after the last message it covers, and that message's
stream sequence. Most checkpoints write only a delta (``Engine.snapshot(delta=True)``:
the rows appended and cut since the previous one), in the same transaction that moves
``last_seq``; once the deltas add up to more than the full state, a full state replaces
them. The worker acknowledges messages to JetStream only after the checkpoint covering
them is committed, so a crash at any point replays from the last checkpoint: the same
rows into the same state, hence the same alerts (which the store takes idempotently,
by ``alert_id``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import delete, func, insert, select, update

from ..snapshots import Pace, pause_after
from ..store.db import Store
from ..store.models import StreamCheckpoint, StreamCheckpointDelta


@dataclass
class Checkpoint:
    stream: str
    last_seq: int
    rows: int
    state: bytes  # the full state, or with ``delta`` the changes since the stored ones
    delta: bool = False
    deltas: list[bytes] = field(default_factory=list)  # loaded: to apply on top of ``state``, in order

    def size(self) -> tuple[int, int]:
        """Bytes of the full state, and of the deltas on top of it."""
        return len(self.state), sum(len(d) for d in self.deltas)


# A delta is stored in rows of at most this many bytes, paced (``save_checkpoint``)
PIECE_BYTES = 4 * 1024 * 1024


def load_checkpoint(store: Store, consumer: str, partition: int) -> Checkpoint | None:
    with store.session() as session:
        row = session.get(StreamCheckpoint, (consumer, partition))
        if row is None:
            return None
        pieces = session.execute(select(StreamCheckpointDelta.state, StreamCheckpointDelta.more).where(
            StreamCheckpointDelta.consumer == consumer, StreamCheckpointDelta.partition == partition)
            .order_by(StreamCheckpointDelta.n)).all()
        deltas: list[bytes] = []
        parts: list[bytes] = []
        for state, more in pieces:
            parts.append(bytes(state))
            if not more:
                deltas.append(b"".join(parts))
                parts = []
        if parts:  # a transaction writes a delta's pieces together: never seen
            raise ValueError(f"consumer '{consumer}' partition {partition}: a delta checkpoint's last piece is missing")
        return Checkpoint(row.stream, int(row.last_seq), int(row.rows), bytes(row.state), deltas=deltas)


def save_checkpoint(store: Store, consumer: str, partition: int, checkpoint: Checkpoint,
                    pace: Pace = 0.0) -> None:
    """One transaction. A full state overwrites the partition's row (never reading the old
    state back, which ``Session.merge`` would do) and drops its deltas; a delta is added
    after the others (in pieces of PIECE_BYTES; ``pace``: after each but the last, sleep
    this many times as long as it took) and moves the row's ``last_seq``."""
    table, deltas = StreamCheckpoint.__table__, StreamCheckpointDelta.__table__
    row = (table.c.consumer == consumer, table.c.partition == partition)
    mine = (deltas.c.consumer == consumer, deltas.c.partition == partition)
    values = {"stream": checkpoint.stream, "last_seq": checkpoint.last_seq, "rows": checkpoint.rows,
              "updated_at": datetime.now(UTC)}
    with store.session() as session, session.begin():
        if checkpoint.delta:
            done = session.execute(update(table).where(*row).values(**values))
            if done.rowcount == 0:
                raise ValueError(f"a delta checkpoint of consumer '{consumer}' partition {partition} "
                                 "needs a full one before it")
            n = session.execute(select(func.coalesce(func.max(deltas.c.n), 0)).where(*mine)).scalar_one()
            state = checkpoint.state
            starts = range(0, max(len(state), 1), PIECE_BYTES)
            for k, start in enumerate(starts):
                started = time.perf_counter()
                more = k < len(starts) - 1
                session.execute(insert(deltas).values(consumer=consumer, partition=partition, n=n + 1 + k,
                                                      state=state[start:start + PIECE_BYTES], more=more))
                if more:
                    pause_after(pace, time.perf_counter() - started)
            return
        values["state"] = checkpoint.state
        done = session.execute(update(table).where(*row).values(**values))
        if done.rowcount == 0:
            session.execute(insert(table).values(consumer=consumer, partition=partition, **values))
        session.execute(delete(deltas).where(*mine))


def reset_checkpoints(store: Store, consumer: str) -> int:
    """Forget where ``consumer`` stands on every partition (it starts from the stream's start)."""
    with store.session() as session, session.begin():
        session.execute(delete(StreamCheckpointDelta).where(StreamCheckpointDelta.consumer == consumer))
        table = StreamCheckpoint.__table__
        return int(session.execute(delete(table).where(table.c.consumer == consumer)).rowcount)
