"""Writing alerts to the store: idempotent, with their evidence rows, opening or extending cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from sqlalchemy import insert, select, text, update

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
        if _postgres(session):
            known = set(session.execute(text("SELECT alert_id FROM alerts WHERE alert_id = ANY(CAST(:ids AS varchar[]))"),
                                        {"ids": ids}).scalars())
        else:
            for chunk in _chunks(ids):
                known |= set(session.execute(select(Alert.alert_id).where(Alert.alert_id.in_(chunk))).scalars())
        fresh = alerts.filter(~pl.col("alert_id").is_in(list(known))).unique("alert_id", maintain_order=True)
        if fresh.height == 0:
            return IngestReport(0, len(known), 0, 0)
        cases, new_cases = _open_cases(session, fresh, now)
        case_ids = pl.DataFrame({"purpose": [p for p, _ in cases], "key": [k for _, k in cases],
                                 "case_id": list(cases.values())}, schema={"purpose": pl.String,
                                                                          "key": pl.String, "case_id": pl.Int64})
        _insert_alerts(session, fresh.join(case_ids, on=["purpose", "key"], how="left", maintain_order="left")
                       .with_columns(pl.lit(now).alias("ingested_at")))
        if events is not None:
            _evidence_rows(session, fresh, events, key_columns)
        if new_cases:
            audit.append(session, actor=actor, action="cases.opened", object_type="cases",
                         object_id=str(len(new_cases)),
                         after={"cases": new_cases})
        audit.append(session, actor=actor, action="alerts.ingested", object_type="alerts",
                     object_id=str(fresh.height),
                     after={"alert_ids": fresh["alert_id"].to_list()[:10_000], "count": fresh.height})
    return IngestReport(fresh.height, len(known), len(new_cases), len(cases) - len(new_cases))


def _postgres(session) -> bool:  # type: ignore[no-untyped-def]
    """PostgreSQL takes a list as one array parameter (``= ANY(...)``). An ``IN`` of hundreds
    of bound parameters cost SQLAlchemy more to compile than the database to run: a third of a
    stream worker's store time went to it."""
    return bool(session.bind.dialect.name == "postgresql")


def _chunks(values: list, size: int = 900) -> list[list]:  # type: ignore[type-arg]
    """Stay under SQLite's bound-parameter limit."""
    return [values[i:i + size] for i in range(0, len(values), size)]


def _insert_alerts(session, rows: pl.DataFrame) -> None:  # type: ignore[no-untyped-def]
    """Core statements with plain values: the ORM's per-row bookkeeping cost more than the
    database did, and a stream writes alerts many times a second. PostgreSQL (through
    psycopg 3) gets one ``COPY`` of CSV that Polars writes, with no Python per row."""
    columns = [c.name for c in Alert.__table__.columns]
    rows = rows.select(columns)
    if (session.bind.dialect.name, session.bind.dialect.driver) != ("postgresql", "psycopg"):
        values = rows.to_dicts()
        for row in values:
            row["evidence"] = list(row["evidence"])
        session.execute(insert(Alert.__table__), values)
        return
    prefix = len('{"evidence":')
    csv = rows.with_columns(
        pl.struct("evidence").struct.json_encode().str.slice(prefix).str.head(-1).alias("evidence"),
    ).write_csv(include_header=False, quote_style="non_numeric", null_value="",
                datetime_format="%Y-%m-%dT%H:%M:%S%.6f%:z")
    driver = session.connection().connection.driver_connection  # the session's transaction
    with driver.cursor() as cursor, cursor.copy(
            f"COPY alerts ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(csv)


def _open_cases(session, fresh: pl.DataFrame,  # type: ignore[no-untyped-def]
                now: datetime) -> tuple[dict[tuple[str, str], int], list[dict]]:
    """The open case id of each (purpose, key) among ``fresh``, opening the missing ones."""
    cases: dict[tuple[str, str], int] = {}
    opened: list[dict] = []
    table = Case.__table__

    postgres = _postgres(session)

    def lookup(purpose: str, keys: list[str]) -> None:
        if postgres:
            found = session.execute(text(
                "SELECT id, key FROM cases WHERE purpose = :purpose AND key = ANY(CAST(:keys AS varchar[])) "
                "AND status <> 'closed' ORDER BY id"), {"purpose": purpose, "keys": keys})
            for case_id, key in found:
                cases.setdefault((purpose, key), case_id)
            return
        for chunk in _chunks(keys):
            found = session.execute(select(Case.id, Case.key).where(
                Case.purpose == purpose, Case.key.in_(chunk), Case.status != "closed").order_by(Case.id))
            for case_id, key in found:
                cases.setdefault((purpose, key), case_id)

    for (purpose,), part in fresh.select("purpose", "key").unique().group_by("purpose"):
        keys = part["key"].to_list()
        lookup(purpose, keys)
        extended = [cases[(purpose, k)] for k in keys if (purpose, k) in cases]
        if postgres and extended:
            session.execute(text("UPDATE cases SET updated_at = :now WHERE id = ANY(CAST(:ids AS integer[]))"),
                            {"now": now, "ids": extended})
        else:
            for chunk in _chunks(extended):
                session.execute(update(table).where(table.c.id.in_(chunk)).values(updated_at=now))
        missing = [k for k in keys if (purpose, k) not in cases]
        if missing:
            _insert_cases(session, purpose, missing, now)
            lookup(purpose, missing)
            opened.extend({"id": cases[(purpose, k)], "purpose": purpose, "key": k} for k in missing)
    return cases, opened


def _insert_cases(session, purpose: str, keys: list[str], now: datetime) -> None:  # type: ignore[no-untyped-def]
    """New open cases. PostgreSQL takes the keys as one array (``unnest``): a multi-row
    VALUES, an executemany or an INSERT ... RETURNING in parameter order each cost
    three to ten times as much there."""
    if _postgres(session):
        session.execute(text("INSERT INTO cases (purpose, key, status, created_at, updated_at) "
                             "SELECT :purpose, k, 'open', :now, :now FROM unnest(CAST(:keys AS varchar[])) AS k"),
                        {"purpose": purpose, "now": now, "keys": keys})
        return
    table = Case.__table__
    for chunk in _chunks(keys):
        session.execute(insert(table).values([{"purpose": purpose, "key": k, "status": "open",
                                               "created_at": now, "updated_at": now} for k in chunk]))


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
