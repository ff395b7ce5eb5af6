"""The audit trail: append-only entries, each hash covering its content and the previous hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEntry, AuditHead

GENESIS = "0" * 64


def _digest(prev_hash: str, entry: AuditEntry) -> str:
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
    body = json.dumps({
        "id": entry.id, "at": at.astimezone(UTC).isoformat(), "actor": entry.actor, "action": entry.action,
        "object_type": entry.object_type, "object_id": entry.object_id, "before": entry.before,
        "after": entry.after,
    }, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def append(session: Session, *, actor: str, action: str, object_type: str, object_id: str,
           before: dict | None = None, after: dict | None = None) -> AuditEntry:
    """Append one entry in the caller's transaction (the head row is locked on PostgreSQL)."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    prev_hash = head.last_hash if head else GENESIS
    entry = AuditEntry(at=datetime.now(UTC).replace(microsecond=0), actor=actor, action=action,
                       object_type=object_type, object_id=str(object_id), before=before, after=after,
                       prev_hash=prev_hash, hash="")
    session.add(entry)
    session.flush()  # assigns the id, which the hash covers
    entry.hash = _digest(prev_hash, entry)
    if head is None:
        session.add(AuditHead(id=1, last_id=entry.id, last_hash=entry.hash))
    else:
        head.last_id, head.last_hash = entry.id, entry.hash
    return entry


@dataclass
class AuditReport:
    ok: bool
    entries: int
    problem: str = ""
    row: int | None = None


def verify_audit(session: Session) -> AuditReport:
    """Walk the chain; the first entry that was edited, removed or reordered is named."""
    prev_hash = GENESIS
    prev_id = 0
    count = 0
    for entry in session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars():
        count += 1
        if entry.prev_hash != prev_hash:
            return AuditReport(False, count, f"audit entry {entry.id}: the entry before it (after {prev_id}) "
                                             "was changed or removed", entry.id)
        if _digest(prev_hash, entry) != entry.hash:
            return AuditReport(False, count, f"audit entry {entry.id} ({entry.action}) was changed after it "
                                             "was written", entry.id)
        prev_hash, prev_id = entry.hash, entry.id
    head = session.get(AuditHead, 1)
    if head is not None and (head.last_id != prev_id or head.last_hash != prev_hash):
        return AuditReport(False, count, f"audit entries after {prev_id} were removed (the chain's head "
                                         f"says {head.last_id})", prev_id)
    return AuditReport(True, count)
