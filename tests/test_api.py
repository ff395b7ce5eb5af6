from __future__ import annotations

import pandas as pd
import polars as pl
import pytest

import assay
from assay.scenarios import build_scenario

YAML = """
version: 1
purpose: fraud
scenarios:
  - id: two-items
    kind: combination
    items: [a, b]
    window: 1h
"""

ROWS = {
    "event_id": ["1", "2", "3"],
    "entity": ["x", "x", "y"],
    "ts": ["2024-01-01T00:00:00Z", "2024-01-01T00:30:00Z", "2024-01-01T00:30:00Z"],
    "item": ["a", "b", "a"],
}


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "events.csv"
    pl.DataFrame(ROWS).write_csv(path)
    return path


def check(alerts: pl.DataFrame) -> None:
    assert isinstance(alerts, pl.DataFrame)
    assert alerts["key"].to_list() == ["x"]
    assert alerts["trigger_event_id"].to_list() == ["2"]
    assert alerts["evidence"].to_list() == [["1", "2"]]


def test_events_from_path_list_and_frames(csv_path):
    check(assay.run(YAML, csv_path))
    check(assay.run(YAML, str(csv_path)))
    check(assay.run(YAML, [csv_path]))
    frame = pl.DataFrame(ROWS)
    check(assay.run(YAML, frame))
    check(assay.run(YAML, frame.to_arrow()))
    check(assay.run(YAML, pd.DataFrame(ROWS)))


def test_scenarios_from_path_string_and_objects(tmp_path, csv_path):
    path = tmp_path / "s.yaml"
    path.write_text(YAML)
    check(assay.run(path, csv_path))
    check(assay.run(str(path), csv_path))
    scenario = build_scenario({"id": "two-items", "kind": "combination", "items": ["a", "b"], "window": "1h"},
                              "fraud")
    check(assay.run(scenario, csv_path))
    check(assay.run([scenario], csv_path))
    check(assay.run(assay.load_scenarios(path), csv_path))


def test_same_input_twice_gives_the_same_ids(csv_path):
    first = assay.run(YAML, csv_path)
    second = assay.run(YAML, [csv_path])
    assert first["alert_id"].to_list() == second["alert_id"].to_list()


def test_alert_ids_depend_on_purpose_and_version(csv_path):
    other_purpose = assay.run(YAML.replace("purpose: fraud", "purpose: aml"), csv_path)
    other_version = assay.run(YAML.replace("kind: combination", "kind: combination\n    version: 2"), csv_path)
    base = assay.run(YAML, csv_path)["alert_id"][0]
    assert other_purpose["alert_id"][0] != base
    assert other_version["alert_id"][0] != base
    assert other_purpose["purpose"][0] == "aml"


def test_skip_mode_reports_rejects(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("event_id,entity,ts,item\n1,x,2024-01-01T00:00:00Z,a\n2,x,nope,b\n")
    result = assay.run_detailed(YAML, path, on_error="skip")
    assert result.rows_read == 2
    assert result.rejects.height == 1
    with pytest.raises(assay.InputError):
        assay.run(YAML, path)
