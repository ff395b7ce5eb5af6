"""Writing alerts to the store: idempotent, with their evidence rows, opening or extending cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from sqlalchemy import select

from . import audit
from .db import Store
from .models import Alert, Case, EvidenceRow


@dataclass
class IngestReport:
    new_alerts: int
    known_alerts: int
    cases_opened: int
    cases_extended: int


def ingest_alerts(store: Store, alerts: pl.DataFrame, events: pl.DataFrame | None = None, *,
                  actor: str = "assay run", key_columns: dict[str, str] | None = None) -> IngestReport:
    """Add alerts not yet stored (by ``alert_id``); running the same input twice adds nothing.

    ``events``: the run's events; the rows behind each alert's evidence (same event ids and
    the alert's key in the scenario's key column, ``key_columns``) are stored with it.
    """
    if alerts.height == 0:
        return IngestReport(0, 0, 0, 0)
    now = datetime.now(UTC)
    key_columns = key_columns or {}
    with store.session() as session, session.begin():
        ids = alerts["alert_id"].to_list()
        known = set()
        for start in range(0, len(ids), 900):  # stay under SQLite's bound-parameter limit
            chunk = ids[start:start + 900]
            known |= set(session.execute(select(Alert.alert_id).where(Alert.alert_id.in_(chunk))).scalars())
        fresh = alerts.filter(~pl.col("alert_id").is_in(list(known)))
        opened = extended = 0
        open_cases: dict[tuple[str, str], Case] = {}
        for row in fresh.iter_rows(named=True):
            case_key = (row["purpose"], row["key"])
            case = open_cases.get(case_key)
            if case is None:
                case = session.execute(select(Case).where(
                    Case.purpose == row["purpose"], Case.key == row["key"], Case.status != "closed")
                    .order_by(Case.id)).scalars().first()
                if case is None:
                    case = Case(purpose=row["purpose"], key=row["key"], status="open", created_at=now,
                                updated_at=now)
                    session.add(case)
                    session.flush()
                    opened += 1
                    audit.append(session, actor=actor, action="case.opened", object_type="case",
                                 object_id=str(case.id), after={"purpose": case.purpose, "key": case.key})
                else:
                    extended += 1
                    case.updated_at = now
                open_cases[case_key] = case
            session.add(Alert(
                alert_id=row["alert_id"], purpose=row["purpose"], scenario=row["scenario"],
                scenario_version=row["scenario_version"], key=row["key"], ts=row["ts"],
                trigger_event_id=row["trigger_event_id"], value=row["value"], threshold=row["threshold"],
                severity=row["severity"], evidence=list(row["evidence"]),
                evidence_truncated=row["evidence_truncated"], case_id=case.id, ingested_at=now))
        session.flush()
        if events is not None and fresh.height:
            _evidence_rows(session, fresh, events, key_columns)
        if fresh.height:
            audit.append(session, actor=actor, action="alerts.ingested", object_type="alerts",
                         object_id=str(fresh.height),
                         after={"alert_ids": fresh["alert_id"].to_list()[:10_000], "count": fresh.height})
    return IngestReport(fresh.height, len(known), opened, extended)


def _evidence_rows(session, fresh: pl.DataFrame, events: pl.DataFrame, key_columns: dict[str, str]) -> None:
    wanted = fresh.select("alert_id", "scenario", "key", pl.col("evidence")).explode("evidence").rename(
        {"evidence": "event_id"})
    rows = events.filter(pl.col("event_id").is_in(wanted["event_id"].unique().implode()))
    data_cols = [c for c in rows.columns if not c.startswith("_")]
    for scenario, part in wanted.group_by("scenario"):
        key_col = key_columns.get(str(scenario[0]), "entity")
        matched = part.join(rows.with_columns(pl.col(key_col).cast(pl.String).alias("_key")),
                            left_on=["event_id", "key"], right_on=["event_id", "_key"], how="inner")
        for r in matched.unique(subset=["alert_id", *data_cols], maintain_order=True).iter_rows(named=True):
            data = {c: (r[c].isoformat() if hasattr(r[c], "isoformat") else r[c]) for c in data_cols}
            session.add(EvidenceRow(alert_id=r["alert_id"], event_id=r["event_id"], ts=r["ts"], data=data))
