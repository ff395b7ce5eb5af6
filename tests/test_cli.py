from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from assay import read_alerts
from assay.cli import main

SCENARIOS = """
version: 1
purpose: fraud
scenarios:
  - id: two-items
    kind: combination
    items: [a, b]
    window: 1h
  - id: big-spend
    kind: aggregate
    metric: sum(amount)
    op: ">"
    threshold: 100
    window: 1d
"""

EVENTS = """tx,cust,time,item,amount
1,x,2024-01-01T00:00:00Z,a,60
2,x,2024-01-01T00:30:00Z,b,60
3,y,2024-01-01T00:30:00Z,a,1
"""


@pytest.fixture
def files(tmp_path):
    s = tmp_path / "scenarios.yaml"
    s.write_text(SCENARIOS)
    e = tmp_path / "events.csv"
    e.write_text(EVENTS)
    return s, e


MAP = ["--map", "event_id=tx", "--map", "entity=cust", "--map", "ts=time"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_run_writes_alerts_in_each_format(files, tmp_path, suffix, capsys):
    s, e = files
    out = tmp_path / f"alerts{suffix}"
    assert main(["run", str(s), str(e), "--out", str(out), *MAP]) == 0
    alerts = read_alerts(out)
    assert sorted(alerts["scenario"].to_list()) == ["big-spend", "two-items"]
    assert alerts["evidence"].to_list()[0] == ["1", "2"]
    printed = capsys.readouterr().out
    assert "rows read" in printed and "alerts: two-items" in printed and "rows/s" in printed


def test_summary_of_a_large_pack_names_the_busiest_scenarios_and_sums_the_rest(files, tmp_path, capsys):
    _, e = files
    pack = ["version: 1", "purpose: fraud", "scenarios:"] + [
        f"  - {{id: c{i:02d}, kind: combination, items: [a, {'b' if i < 3 else f'z{i}'}], window: 1h}}"
        for i in range(30)]
    s = tmp_path / "pack.yaml"
    s.write_text("\n".join(pack) + "\n")
    assert main(["run", str(s), str(e), *MAP]) == 0
    printed = capsys.readouterr().out
    assert "alerts: c00" in printed and "alerts: c29" not in printed
    assert "alerts: 20 other scenarios (20 without any)" in printed and "alerts: total" in printed


def test_jsonl_fields(files, tmp_path):
    s, e = files
    out = tmp_path / "a.jsonl"
    main(["run", str(s), str(e), "--out", str(out), *MAP, "--quiet"])
    record = json.loads(out.read_text().splitlines()[0])
    assert list(record) == ["alert_id", "purpose", "scenario", "scenario_version", "key", "ts",
                            "trigger_event_id", "value", "threshold", "severity", "evidence",
                            "evidence_truncated"]
    assert record["ts"] == "2024-01-01T00:30:00Z"


def test_without_out_only_a_summary(files, capsys):
    s, e = files
    assert main(["run", str(s), str(e), *MAP]) == 0
    assert "not written" in capsys.readouterr().out


def test_bad_input_is_one_line_and_status_2(files, tmp_path):
    s, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("event_id,entity,ts,amount\n1,x,2024-01-01,12x\n")
    proc = subprocess.run([sys.executable, "-m", "assay.cli", "run", str(s), str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert f"{bad}: row 1, column 'amount', value '12x': not a number" in proc.stderr


def test_skip_writes_rejects(files, tmp_path, capsys):
    s, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("event_id,entity,ts,amount\n1,x,2024-01-01,12x\n2,x,2024-01-01,5\n")
    out = tmp_path / "out" / "alerts.jsonl"
    assert main(["run", str(s), str(bad), "--on-error", "skip", "--out", str(out)]) == 0
    rejects = pl.read_ndjson(out.with_name("rejects.jsonl"))
    assert rejects["row"].to_list() == [1] and rejects["column"].to_list() == ["amount"]
    assert "1 rejected row(s)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["run", "missing.yaml", "missing.csv"], "no such file"),
    (["run", "{s}", "{e}", "--map", "entity"], "--map expects CANONICAL=COLUMN"),
    (["run", "{s}", "{e}", "--out", "x.txt"], "use a .jsonl, .csv or .parquet"),
    (["check", "missing.yaml"], "no such file"),
])
def test_usage_errors(files, args, message, capsys):
    s, e = files
    argv = [a.format(s=s, e=e) for a in args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_check_describes_each_scenario(files, capsys):
    s, _ = files
    assert main(["check", str(s)]) == 0
    out = capsys.readouterr().out
    assert "2 scenario(s), purpose 'fraud'" in out
    assert "two-items (v1, combination): alert when all of [a, b] occur per entity, within 1h" in out
    assert "big-spend (v1, aggregate): alert when sum(amount) > 100" in out


def test_check_reports_the_scenario_and_field(tmp_path, capsys):
    s = tmp_path / "s.yaml"
    s.write_text(SCENARIOS.replace("threshold: 100", "treshold: 100"))
    assert main(["check", str(s)]) == 2
    err = capsys.readouterr().err
    assert "scenario 'big-spend', field 'treshold'" in err


def test_progress_bar_on_a_terminal(monkeypatch):
    from assay.progress import LARGE_INPUT_BYTES, Progress

    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    with Progress(LARGE_INPUT_BYTES, enabled=True) as progress:
        assert progress.enabled
        progress.file_done("events.parquet", 10)
        progress.detector_done(1, 2)
        progress.detector_done(2, 2)
    with Progress(LARGE_INPUT_BYTES - 1) as small:
        assert not small.enabled  # short work: no bar
