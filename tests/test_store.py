"""The alert store on SQLite and PostgreSQL: idempotent ingest, cases, evidence, audit chain."""

from __future__ import annotations

import polars as pl
import pytest
from sqlalchemy import func, select, text

import assay
from assay.cli import main
from assay.store import audit, ingest_alerts, open_store, verify_audit
from assay.store.models import Alert, AuditEntry, Case, EvidenceRow
from conftest import create_pg_database, drop_pg_database

SCENARIOS = """
version: 1
purpose: fraud
scenarios:
  - {id: ab, kind: combination, items: [a, b], window: 1h}
  - {id: spend, kind: aggregate, metric: sum(amount), op: ">", threshold: 100, window: 1d}
"""


def events() -> pl.DataFrame:
    frame = pl.DataFrame({
        "event_id": ["e1", "e2", "e3", "e4", "e5"],
        "entity": ["k1", "k1", "k2", "k2", "k1"],
        "ts": ["2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z", "2024-01-01T00:00:00Z",
               "2024-01-01T00:20:00Z", "2024-01-02T12:00:00Z"],
        "item": ["a", "b", "a", "b", "a"],
        "amount": [60.0, 50.0, 1.0, 1.0, 200.0],
    })
    return assay.read_events(frame).events


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'assay.db'}" if request.param == "sqlite" else create_pg_database()
    s = open_store(url)
    yield s
    s.engine.dispose()
    if request.param == "postgresql":
        drop_pg_database(url)


def run_into(store, frame: pl.DataFrame | None = None):
    ev = frame if frame is not None else events()
    alerts = assay.run(SCENARIOS, ev)
    return alerts, ingest_alerts(store, alerts, ev, key_columns={"ab": "entity", "spend": "entity"})


def test_ingest_is_idempotent_and_opens_cases(store):
    alerts, first = run_into(store)
    assert first.new_alerts == alerts.height == 3 and first.cases_opened == 2
    _, second = run_into(store)
    assert (second.new_alerts, second.known_alerts, second.cases_opened) == (0, 3, 0)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 3
        cases = session.execute(select(Case).order_by(Case.key)).scalars().all()
        assert [(c.key, c.status) for c in cases] == [("k1", "open"), ("k2", "open")]
        k1_alerts = session.execute(select(Alert).where(Alert.key == "k1")).scalars().all()
        assert len({a.case_id for a in k1_alerts}) == 1  # same purpose and key: one case


def test_every_field_of_an_alert_is_stored_as_it_was(store):
    """PostgreSQL takes alerts by COPY of CSV: quotes, separators, line breaks and unicode survive."""
    from datetime import UTC, datetime

    from assay.alerts import ALERT_SCHEMA

    tricky = ['say "hi", then\nleave', "", "zwölf 東京 ✓", "back\\slash", ",", '"']
    alerts = pl.DataFrame({
        "alert_id": [f"a{i}" for i in range(len(tricky))],
        "purpose": ["fraud"] * len(tricky),
        "scenario": ["s"] * len(tricky),
        "scenario_version": [1, 2, 3, 4, 5, 6],
        "key": tricky,
        "ts": [datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)] * len(tricky),
        "trigger_event_id": tricky[::-1],
        "value": [0.1, -1e-7, 1e300, 3.0, 2.5e-300, 123456789.123],
        "threshold": [1.0, 0.0, -2.5, 1e15, 7.0, 0.3],
        "severity": ["high", "low", "medium", "high", "low", "high"],
        "evidence": [[t, "e2"] for t in tricky],
        "evidence_truncated": [True, False, True, False, False, True],
    }, schema=ALERT_SCHEMA)
    ingest_alerts(store, alerts, actor="test")
    columns = list(ALERT_SCHEMA)
    with store.session() as session:
        stored = session.execute(select(*(getattr(Alert, c) for c in columns)).order_by(Alert.alert_id)).all()
    got = pl.DataFrame([dict(zip(columns, row, strict=True)) for row in stored], schema=ALERT_SCHEMA,
                       orient="row")
    assert got.to_dicts() == alerts.to_dicts()


def test_checkpoint_states_round_trip_and_postgresql_leaves_them_uncompressed(store, monkeypatch):
    from assay.streaming import checkpoints
    from assay.streaming.checkpoints import (
        Checkpoint,
        load_checkpoint,
        reset_checkpoints,
        save_checkpoint,
    )

    state = bytes(range(256)) * 4096
    save_checkpoint(store, "c", 0, Checkpoint("S", 5, 10, b"old"))
    save_checkpoint(store, "c", 0, Checkpoint("S", 7, 15, b"d1", delta=True))
    save_checkpoint(store, "c", 0, Checkpoint("S", 9, 20, state))  # a full state replaces state and deltas
    save_checkpoint(store, "c", 1, Checkpoint("S", 1, 1, b"x"))
    got = load_checkpoint(store, "c", 0)
    assert got is not None and (got.stream, got.last_seq, got.rows, got.state, got.deltas) == \
        ("S", 9, 20, state, [])
    save_checkpoint(store, "c", 0, Checkpoint("S", 11, 25, b"d2", delta=True))
    save_checkpoint(store, "c", 0, Checkpoint("S", 12, 30, b"d3", delta=True))
    got = load_checkpoint(store, "c", 0)
    assert got is not None and (got.last_seq, got.rows, got.state, got.deltas) == (12, 30, state, [b"d2", b"d3"])
    assert got.size() == (len(state), 4)
    # a large delta goes in pieces, read back whole, in order among the others
    monkeypatch.setattr(checkpoints, "PIECE_BYTES", 1000)
    save_checkpoint(store, "c", 0, Checkpoint("S", 13, 31, state[:2500], delta=True), pace=0.01)
    save_checkpoint(store, "c", 0, Checkpoint("S", 14, 32, b"", delta=True))
    save_checkpoint(store, "c", 0, Checkpoint("S", 15, 33, b"d4", delta=True))
    got = load_checkpoint(store, "c", 0)
    assert got is not None and got.deltas == [b"d2", b"d3", state[:2500], b"", b"d4"] and got.last_seq == 15
    with store.session() as session:
        assert session.execute(text("SELECT COUNT(*) FROM stream_checkpoint_deltas")).scalar() == 7
    with pytest.raises(ValueError, match="full one"):
        save_checkpoint(store, "c", 5, Checkpoint("S", 1, 1, b"d", delta=True))
    assert reset_checkpoints(store, "c") == 2 and load_checkpoint(store, "c", 0) is None
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            storage = conn.execute(text("SELECT array_agg(attstorage::text) FROM pg_attribute WHERE attname = 'state' "
                                        "AND attrelid IN ('stream_checkpoints'::regclass, "
                                        "'stream_checkpoint_deltas'::regclass)")).scalar()
        assert storage == ["e", "e"]  # external: no pglz at every checkpoint


def test_evidence_rows_are_stored_with_the_alert(store):
    alerts, _ = run_into(store)
    ab_k1 = alerts.filter((pl.col("scenario") == "ab") & (pl.col("key") == "k1"))["alert_id"][0]
    with store.session() as session:
        rows = session.execute(select(EvidenceRow).where(EvidenceRow.alert_id == ab_k1)
                               .order_by(EvidenceRow.event_id)).scalars().all()
        assert [r.event_id for r in rows] == ["e1", "e2"]
        assert rows[0].data["item"] == "a" and rows[0].data["entity"] == "k1"


def test_new_alerts_extend_an_open_case(store):
    run_into(store)
    later = pl.concat([events().drop("_file", "_row"), pl.DataFrame({
        "event_id": ["e9", "e10"], "entity": ["k2", "k2"], "item": ["a", "b"], "amount": [0.0, 0.0],
        "ts": ["2024-01-05T00:00:00Z", "2024-01-05T00:01:00Z"]}).with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC", time_unit="us"), quantity=pl.lit(1.0),
        counterparty=pl.lit(None, dtype=pl.String))], how="diagonal_relaxed")
    _, report = run_into(store, assay.read_events(later).events)
    assert report.new_alerts == 1 and report.cases_extended == 1 and report.cases_opened == 0


def three_audit_entries(store) -> None:
    run_into(store)  # cases opened, alerts ingested
    with store.session() as session, session.begin():
        audit.append(session, actor="tester", action="test.entry", object_type="test", object_id="1")


def test_audit_chain_detects_edits_and_deletions(store):
    three_audit_entries(store)
    with store.session() as session:
        report = verify_audit(session)
        assert report.ok and report.entries == 3
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 2"))
    with store.session() as session:
        report = verify_audit(session)
        assert not report.ok and report.row == 2 and "audit entry 2" in report.problem
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'assay run' WHERE id = 2"))
        conn.execute(text("DELETE FROM audit_log WHERE id = 2"))
    with store.session() as session:
        report = verify_audit(session)
        assert not report.ok and report.row == 3 and "changed or removed" in report.problem


def test_deleting_the_newest_entry_is_noticed(store):
    three_audit_entries(store)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 3"))
    with store.session() as session:
        report = verify_audit(session)
        assert not report.ok and "removed" in report.problem


def cli_files(tmp_path, db: str) -> tuple:
    """The scenario file, the events as Parquet and a SQLite store URL, for CLI tests."""
    s = tmp_path / "s.yaml"
    s.write_text(SCENARIOS)
    e = tmp_path / "e.parquet"
    events().drop("_file", "_row").write_parquet(e)
    return s, e, f"sqlite:///{tmp_path / db}"


def test_cli_run_store_and_audit_verify(tmp_path, capsys):
    s, e, url = cli_files(tmp_path, "cli.db")
    assert main(["run", str(s), str(e), "--store", url]) == 0
    assert "store: 3 new alert(s)" in capsys.readouterr().out
    assert main(["run", str(s), str(e), "--store", url]) == 0
    assert "store: 0 new alert(s), 3 already stored" in capsys.readouterr().out
    assert main(["audit", "verify", "--store", url]) == 0
    store = open_store(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET after = NULL WHERE id = 1"))
    assert main(["audit", "verify", "--store", url]) == 1
    assert "audit entry 1" in capsys.readouterr().err
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 2  # cases opened, alerts ingested


def first_case(store, key: str = "k1") -> int:
    with store.session() as session:
        return session.execute(select(Case.id).where(Case.key == key)).scalar_one()


def test_case_workflow_with_four_eyes(store):
    from assay.store.cases import (
        Actor,
        Conflict,
        Forbidden,
        add_note,
        approve,
        assign,
        set_disposition,
        set_status,
    )

    run_into(store)
    case_id = first_case(store)
    ana = Actor("ana", "analyst", ("fraud",))
    sue = Actor("sue", "supervisor", ("fraud",))
    bob = Actor("bob", "supervisor", ("fraud",))
    assign(store, case_id, "ana", ana)
    assert set_status(store, case_id, "in_review", ana).status == "in_review"
    add_note(store, case_id, "bought all three within a day", ana)
    with pytest.raises(Conflict, match="needs a disposition"):
        set_status(store, case_id, "closed", ana)
    case = set_disposition(store, case_id, "reported", sue)
    assert case.disposition is None and case.pending_disposition == "reported"  # not yet in effect
    with pytest.raises(Forbidden, match="four-eyes"):
        approve(store, case_id, sue)
    with pytest.raises(Forbidden, match="only a supervisor"):
        approve(store, case_id, ana)
    assert approve(store, case_id, bob).disposition == "reported"
    assert set_status(store, case_id, "closed", ana).status == "closed"
    with pytest.raises(Conflict, match="cannot go from closed"):
        set_status(store, case_id, "open", ana)
    with store.session() as session:
        report = verify_audit(session)
        assert report.ok
        actions = [a for a, in session.execute(select(AuditEntry.action).order_by(AuditEntry.id))]
        # refused changes leave no trace; each change that happened has one entry
        assert actions[2:] == ["case.assigned", "case.status", "case.note", "case.disposition", "case.approved",
                               "case.status"]


def test_roles_and_purposes(store):
    from assay.store.cases import Actor, Forbidden, NotFound, assign

    run_into(store)
    case_id = first_case(store)
    with pytest.raises(Forbidden, match="viewer cannot change"):
        assign(store, case_id, "x", Actor("vic", "viewer", ("fraud",)))
    with pytest.raises(NotFound, match=f"case {case_id} not found"):
        assign(store, case_id, "x", Actor("amy", "admin", ("aml",)))  # another purpose: not found, never data


def test_tokens_are_stored_hashed_and_revocable(store, capsys):
    from assay.store.cases import Forbidden, authenticate, create_token, revoke_token
    from assay.store.models import Token

    token = create_token(store, "ana", "analyst", ["fraud", "aml"])
    actor = authenticate(store, token)
    assert (actor.user, actor.role, actor.purposes) == ("ana", "analyst", ("aml", "fraud"))
    with store.session() as session:
        row = session.execute(select(Token)).scalar_one()
        assert token not in str(row.token_hash) and len(row.token_hash) == 64
        token_id = row.id
    revoke_token(store, token_id)
    with pytest.raises(Forbidden, match="revoked"):
        authenticate(store, token)
    with store.session() as session:
        assert verify_audit(session).ok


def test_cli_token(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 't.db'}"
    assert main(["token", "create", "--user", "ana", "--role", "analyst", "--purpose", "fraud", "--store", url]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("assay_")
    assert main(["token", "revoke", "--id", "1", "--store", url]) == 0
    assert main(["token", "create", "--user", "ana", "--store", url]) == 2
    assert main(["audit", "verify", "--store", url]) == 0
