"""Purpose limitation is a design rule enforced in code: these tests hold it in place."""

from __future__ import annotations

import polars as pl
import pytest

import assay
from assay.cli import build_parser
from assay.errors import ScenarioError
from assay.scenarios import build_scenario


def test_every_alert_carries_its_files_purpose():
    frame = pl.DataFrame({"event_id": ["1"], "entity": ["a"], "ts": ["2024-01-01T00:00:00Z"], "item": ["x"]})
    for purpose in ("fraud", "aml", "precursor-compliance"):
        yaml_text = f"version: 1\npurpose: {purpose}\nscenarios:\n  - {{id: s, kind: combination, items: [x], window: 1h}}\n"
        assert assay.run(yaml_text, frame)["purpose"].to_list() == [purpose]


def test_one_run_is_one_purpose():
    a = build_scenario({"id": "a", "kind": "combination", "items": ["x"], "window": "1h"}, "fraud")
    b = build_scenario({"id": "b", "kind": "combination", "items": ["x"], "window": "1h"}, "aml")
    with pytest.raises(ScenarioError, match="different purposes"):
        assay.run([a, b], pl.DataFrame())
    # the CLI takes exactly one scenario file per run
    args = build_parser().parse_args(["run", "s.yaml", "e.csv"])
    assert args.scenarios == "s.yaml"


@pytest.mark.parametrize("column", ["religion", "political_party", "ethnicity", "health_status",
                                    "social_media_handle", "trade_union"])
@pytest.mark.parametrize("place", ["where", "key", "metric"])
def test_special_category_columns_cannot_be_read(column, place):
    entry = {"id": "s", "kind": "aggregate", "metric": "count", "op": ">", "threshold": 1, "window": "1h"}
    if place == "where":
        entry["where"] = f"{column} == 'x'"
    elif place == "key":
        entry["key"] = column
    else:
        entry["metric"] = f"distinct({column})"
    with pytest.raises(ScenarioError, match="special-category"):
        build_scenario(entry, "fraud")


def test_alerts_are_never_an_input_to_scenarios(tmp_path):
    frame = pl.DataFrame({"event_id": ["1"], "entity": ["a"], "ts": ["2024-01-01T00:00:00Z"], "item": ["x"]})
    yaml_text = "version: 1\npurpose: fraud\nscenarios:\n  - {id: s, kind: combination, items: [x], window: 1h}\n"
    alerts = assay.run(yaml_text, frame)
    out = tmp_path / "alerts.parquet"
    assay.write_alerts(alerts, out)
    aml = yaml_text.replace("fraud", "aml")
    with pytest.raises(assay.InputError, match="alerts are never an input"):
        assay.run(aml, out, mapping={"event_id": "trigger_event_id", "entity": "key"})
