"""Tables of the store. Changes go through Alembic migrations (``migrations/``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false


class Base(DeclarativeBase):
    pass


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    purpose: Mapped[str] = mapped_column(String(64), index=True)
    key: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="open")
    assignee: Mapped[str | None] = mapped_column(String(128), nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    pending_disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    pending_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_cases_purpose_key_status", "purpose", "key", "status"),)


class Alert(Base):
    __tablename__ = "alerts"

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64), index=True)
    scenario: Mapped[str] = mapped_column(String(128), index=True)
    scenario_version: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(512), index=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    trigger_event_id: Mapped[str] = mapped_column(String(512))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[list] = mapped_column(JSON)
    evidence_truncated: Mapped[bool] = mapped_column(Boolean)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EvidenceRow(Base):
    """An event row behind an alert, so that a case can be reviewed without the source files."""

    __tablename__ = "evidence_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    event_id: Mapped[str] = mapped_column(String(512))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict] = mapped_column(JSON)


class AuditEntry(Base):
    """Append-only, hash-chained: each entry's hash covers its content and the previous hash."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(128))
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last hash and length: deleting the newest entries is noticed too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(Text)


class CaseNote(Base):
    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    author: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    text: Mapped[str] = mapped_column(Text)


class Token(Base):
    """An API token, stored as its SHA-256 only; the token itself is shown once, at creation."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    purposes: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StreamCheckpoint(Base):
    """Where a stream worker stands on one partition: the engine's state and the last stream
    sequence it covers. Written in one transaction; the worker acknowledges messages only after."""

    __tablename__ = "stream_checkpoints"

    consumer: Mapped[str] = mapped_column(String(128), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String(128))
    last_seq: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StreamCheckpointDelta(Base):
    """What changed in a partition's state since the checkpoint's full state (or the previous
    delta): applied in order of ``n`` on top of ``stream_checkpoints.state``. A checkpoint writes
    a delta, or a full state that replaces them all, in the transaction that moves ``last_seq``."""

    __tablename__ = "stream_checkpoint_deltas"

    consumer: Mapped[str] = mapped_column(String(128), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    more: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # the next n continues it
