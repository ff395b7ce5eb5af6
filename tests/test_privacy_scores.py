"""Purpose-bound scores, pseudonymisation, purge and subject access."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest
from sqlalchemy import func, select, text

import assay
from assay.cli import main
from assay.store import ingest_alerts, verify_audit
from assay.store.cases import Actor, NotFound, set_disposition, set_status
from assay.store.models import Alert, Case, EvidenceRow
from assay.store.privacy import export_subject, purge
from assay.store.scores import score
from test_store import SCENARIOS, cli_files, events, first_case, run_into, store  # noqa: F401 - fixture

FRAUD = Actor("ana", "supervisor", ("fraud",))


def test_score_uses_only_its_purpose_and_past_dispositions(store):  # noqa: F811
    run_into(store)
    # the same key under another purpose must not move the fraud score
    aml = assay.run(SCENARIOS.replace("purpose: fraud", "purpose: aml"), events())
    ingest_alerts(store, aml, events())
    before = score(store, "k1", "fraud", FRAUD)
    assert {r["scenario"] for r in before["reasons"]} == {"ab", "spend"}
    assert before["score"] == pytest.approx(1 - 0.5 * 0.5)  # no history: 0.5 per scenario
    with store.session() as session:
        case_id = session.execute(select(Case.id).where(Case.key == "k2", Case.purpose == "fraud")).scalar_one()
    set_disposition(store, case_id, "false_positive", FRAUD)
    after = score(store, "k1", "fraud", FRAUD)
    ab = next(r for r in after["reasons"] if r["scenario"] == "ab")
    assert (ab["dispositioned_cases"], ab["true_positive_cases"]) == (1, 0) and ab["precision"] == pytest.approx(1 / 3)
    assert after["score"] < before["score"]
    with pytest.raises(NotFound):
        score(store, "k1", "aml", FRAUD)  # a purpose the actor does not hold: not found


def test_no_interface_combines_purposes(store):  # noqa: F811
    from assay.api_http import create_app

    paths = create_app(store).openapi()["paths"]
    score_paths = [p for p in paths if "score" in p]
    assert score_paths == ["/entities/{key}/score"]
    params = {p["name"]: p for p in paths[score_paths[0]]["get"]["parameters"]}
    assert params["purpose"]["required"] is True and params["purpose"]["schema"]["type"] == "string"
    with store.session() as session:
        tables = set(store.engine.dialect.get_table_names(session.connection()))
        assert not [t for t in tables if "score" in t]  # scores are computed, never stored or pooled
    import inspect

    from assay.store import scores

    assert list(inspect.signature(scores.score).parameters) == ["store", "key", "purpose", "actor"]


def test_score_over_http_needs_a_purpose(store):  # noqa: F811
    from fastapi.testclient import TestClient

    from assay.api_http import create_app
    from assay.store.cases import create_token

    run_into(store)
    token = create_token(store, "v", "viewer", ["fraud"])
    client = TestClient(create_app(store))
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/entities/k1/score", headers=h).status_code == 422
    assert client.get("/entities/k1/score?purpose=aml", headers=h).status_code == 404
    body = client.get("/entities/k1/score?purpose=fraud", headers=h).json()
    assert 0 <= body["score"] <= 1 and body["purpose"] == "fraud"


def test_purge_removes_old_closed_cases_and_is_audited(store):  # noqa: F811
    run_into(store)
    case_id = first_case(store, "k1")
    set_disposition(store, case_id, "false_positive", FRAUD)
    set_status(store, case_id, "closed", FRAUD)
    assert purge(store, timedelta(days=400))["cases"] == 0  # too recent
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE cases SET updated_at = :t WHERE id = :i"),
                     {"t": "2020-01-01 00:00:00+00:00", "i": case_id})
    counts = purge(store, timedelta(days=400))
    assert counts["cases"] == 1 and counts["alerts"] == 2 and counts["evidence_rows"] >= 2
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1
        assert session.scalar(select(func.count()).select_from(Alert).where(Alert.key == "k1")) == 0
        assert session.scalar(select(func.count()).select_from(EvidenceRow)) >= 1
        assert verify_audit(session).ok


def test_export_subject(store):  # noqa: F811
    run_into(store)
    data = export_subject(store, "k1", "fraud")
    assert len(data["cases"]) == 1 and len(data["cases"][0]["alerts"]) == 2
    assert {r["event_id"] for r in data["cases"][0]["evidence_rows"]} >= {"e1", "e2"}
    assert export_subject(store, "k1", "aml")["cases"] == []


def test_pseudonymize_cli(tmp_path, monkeypatch, capsys):
    src = tmp_path / "e.csv"
    pl.DataFrame({"event_id": ["1", "2"], "entity": ["alice", "alice"], "counterparty": ["m1", "m2"],
                  "ts": ["2024-01-01", "2024-01-02"]}).write_csv(src)
    key = tmp_path / "key"
    key.write_text("a-secret-key-of-enough-length")
    out = tmp_path / "p.csv"
    assert main(["pseudonymize", str(src), str(out), "--columns", "entity,counterparty", "--key-file", str(key)]) == 0
    frame = pl.read_csv(out)
    assert frame["entity"][0] == frame["entity"][1] != "alice" and frame["entity"][0].startswith("p_")
    assert "a-secret-key" not in out.read_text()
    monkeypatch.delenv("ASSAY_PSEUDONYM_KEY", raising=False)
    assert main(["pseudonymize", str(src), str(out), "--columns", "entity"]) == 2
    assert "at least 16 bytes" in capsys.readouterr().err


def test_cli_purge_and_export(tmp_path, capsys):
    s, e, url = cli_files(tmp_path, "c.db")
    assert main(["run", str(s), str(e), "--store", url, "--quiet"]) == 0
    assert main(["purge", "--older-than", "400d", "--store", url]) == 0
    assert "purged 0 closed case(s)" in capsys.readouterr().out
    out = tmp_path / "subject.json"
    assert main(["export-subject", "k1", "--purpose", "fraud", "--store", url, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["key"] == "k1"
