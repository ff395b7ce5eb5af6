"""Checkpoints of stream workers in the store: one row per (consumer, partition).

A checkpoint is the engine's snapshot after the last message it covers, and that
message's stream sequence. The worker acknowledges messages to JetStream only after
the checkpoint covering them is committed, so a crash at any point replays from the
last checkpoint: the same rows into the same state, hence the same alerts (which the
store takes idempotently, by ``alert_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, update

from ..store.db import Store
from ..store.models import StreamCheckpoint


@dataclass
class Checkpoint:
    stream: str
    last_seq: int
    rows: int
    state: bytes


def load_checkpoint(store: Store, consumer: str, partition: int) -> Checkpoint | None:
    with store.session() as session:
        row = session.get(StreamCheckpoint, (consumer, partition))
        if row is None:
            return None
        return Checkpoint(row.stream, int(row.last_seq), int(row.rows), bytes(row.state))


def save_checkpoint(store: Store, consumer: str, partition: int, checkpoint: Checkpoint) -> None:
    """Overwrite the partition's row (an UPDATE, or the first INSERT); the old state is
    never read back, which ``Session.merge`` would do."""
    table = StreamCheckpoint.__table__
    values = {"stream": checkpoint.stream, "last_seq": checkpoint.last_seq, "rows": checkpoint.rows,
              "state": checkpoint.state, "updated_at": datetime.now(UTC)}
    with store.session() as session, session.begin():
        done = session.execute(update(table).where(table.c.consumer == consumer, table.c.partition == partition)
                               .values(**values))
        if done.rowcount == 0:
            session.execute(insert(table).values(consumer=consumer, partition=partition, **values))


def reset_checkpoints(store: Store, consumer: str) -> int:
    """Forget where ``consumer`` stands on every partition (it starts from the stream's start)."""
    with store.session() as session, session.begin():
        rows = session.query(StreamCheckpoint).filter(StreamCheckpoint.consumer == consumer).all()
        for row in rows:
            session.delete(row)
        return len(rows)
