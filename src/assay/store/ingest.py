"""Writing alerts to the store: idempotent, with their evidence rows, opening or extending cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from sqlalchemy import insert, select

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
        known: set[str] = set()
        for chunk in _chunks(ids):
            known |= set(session.execute(select(Alert.alert_id).where(Alert.alert_id.in_(chunk))).scalars())
        fresh = alerts.filter(~pl.col("alert_id").is_in(list(known))).unique("alert_id", maintain_order=True)
        if fresh.height == 0:
            return IngestReport(0, len(known), 0, 0)
        cases, new_cases = _open_cases(session, fresh, now)
        session.execute(insert(Alert), [
            {**row, "evidence": list(row["evidence"]), "case_id": cases[(row["purpose"], row["key"])].id,
             "ingested_at": now}
            for row in fresh.iter_rows(named=True)])
        if events is not None:
            _evidence_rows(session, fresh, events, key_columns)
        if new_cases:
            audit.append(session, actor=actor, action="cases.opened", object_type="cases",
                         object_id=str(len(new_cases)),
                         after={"cases": [{"id": c.id, "purpose": c.purpose, "key": c.key} for c in new_cases]})
        audit.append(session, actor=actor, action="alerts.ingested", object_type="alerts",
                     object_id=str(fresh.height),
                     after={"alert_ids": fresh["alert_id"].to_list()[:10_000], "count": fresh.height})
    return IngestReport(fresh.height, len(known), len(new_cases), len(cases) - len(new_cases))


def _chunks(values: list, size: int = 900) -> list[list]:  # type: ignore[type-arg]
    """Stay under SQLite's bound-parameter limit."""
    return [values[i:i + size] for i in range(0, len(values), size)]


def _open_cases(session, fresh: pl.DataFrame,  # type: ignore[no-untyped-def]
                now: datetime) -> tuple[dict[tuple[str, str], Case], list[Case]]:
    """The open case of each (purpose, key) among ``fresh``, opening the missing ones."""
    cases: dict[tuple[str, str], Case] = {}
    opened: list[Case] = []
    for (purpose,), part in fresh.select("purpose", "key").unique().group_by("purpose"):
        keys = part["key"].to_list()
        for chunk in _chunks(keys):
            found = session.execute(select(Case).where(
                Case.purpose == purpose, Case.key.in_(chunk), Case.status != "closed").order_by(Case.id)).scalars()
            for case in found:
                cases.setdefault((purpose, case.key), case)
        missing = []
        for key in keys:
            if (purpose, key) in cases:
                cases[(purpose, key)].updated_at = now
            else:
                missing.append(key)
        if missing:
            # one INSERT ... RETURNING for all new cases (the ORM would flush them one by one)
            result = session.execute(
                insert(Case).returning(Case.id, Case.key, sort_by_parameter_order=True),
                [{"purpose": purpose, "key": k, "status": "open", "created_at": now, "updated_at": now}
                 for k in missing])
            for case_id, key in result:
                case = Case(id=case_id, purpose=purpose, key=key, status="open", created_at=now, updated_at=now)
                opened.append(case)
                cases[(purpose, key)] = case
    return cases, opened


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
