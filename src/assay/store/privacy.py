"""Data protection: purge past retention, and export everything stored about one key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from . import audit
from .db import Store
from .models import Alert, Case, CaseNote, EvidenceRow


def purge(store: Store, older_than: timedelta, *, actor: str = "assay purge") -> dict[str, int]:
    """Delete closed cases last changed before now - older_than, with their alerts, evidence and notes."""
    cutoff = datetime.now(UTC) - older_than
    with store.session() as session, session.begin():
        case_ids = list(session.execute(select(Case.id).where(Case.status == "closed", Case.updated_at < cutoff))
                        .scalars())
        alert_ids = list(session.execute(select(Alert.alert_id).where(Alert.case_id.in_(case_ids))).scalars()) \
            if case_ids else []
        counts = {"cases": len(case_ids), "alerts": len(alert_ids), "evidence_rows": 0, "notes": 0}
        if case_ids:
            counts["evidence_rows"] = session.execute(
                delete(EvidenceRow).where(EvidenceRow.alert_id.in_(alert_ids))).rowcount or 0
            counts["notes"] = session.execute(delete(CaseNote).where(CaseNote.case_id.in_(case_ids))).rowcount or 0
            session.execute(delete(Alert).where(Alert.case_id.in_(case_ids)))
            session.execute(delete(Case).where(Case.id.in_(case_ids)))
        audit.append(session, actor=actor, action="purge", object_type="store", object_id=cutoff.isoformat(),
                     after={**counts, "case_ids": case_ids[:10_000]})
    return counts


def export_subject(store: Store, key: str, purpose: str, *, actor: str = "assay export-subject") -> dict[str, Any]:
    """Everything stored about one key within one purpose (a subject access request)."""
    with store.session() as session, session.begin():
        cases = session.execute(select(Case).where(Case.key == key, Case.purpose == purpose)
                                .order_by(Case.id)).scalars().all()
        out = []
        for case in cases:
            alerts = session.execute(select(Alert).where(Alert.case_id == case.id).order_by(Alert.ts)).scalars().all()
            ids = [a.alert_id for a in alerts]
            rows = session.execute(select(EvidenceRow).where(EvidenceRow.alert_id.in_(ids))).scalars().all() \
                if ids else []
            notes = session.execute(select(CaseNote).where(CaseNote.case_id == case.id)).scalars().all()
            out.append({
                "case": {"id": case.id, "status": case.status, "disposition": case.disposition,
                         "assignee": case.assignee, "created_at": case.created_at.isoformat()},
                "alerts": [{"alert_id": a.alert_id, "scenario": a.scenario, "ts": a.ts.isoformat(),
                            "value": a.value, "severity": a.severity, "evidence": a.evidence} for a in alerts],
                "evidence_rows": [{"alert_id": r.alert_id, "event_id": r.event_id, "row": r.data} for r in rows],
                "notes": [{"author": n.author, "at": n.at.isoformat(), "text": n.text} for n in notes],
            })
        audit.append(session, actor=actor, action="export", object_type="subject", object_id=key,
                     after={"purpose": purpose, "cases": len(out)})
    return {"key": key, "purpose": purpose, "exported_at": datetime.now(UTC).isoformat(), "cases": out}
