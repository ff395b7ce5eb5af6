from __future__ import annotations

import pytest

import assay
from assay.errors import ScenarioError
from assay.scenarios import Metric, build_scenario, parse_scenarios

GOOD = """
version: 1
purpose: fraud
input:
  map: {entity: CustomerID}
scenarios:
  - id: trio
    kind: combination
    items: [a, b, c]
    min_distinct: 2
    window: 72h
    severity: high
  - id: velocity
    kind: aggregate
    metric: count
    op: ">="
    threshold: 5
    window: 15m
    where: "amount > 0"
  - id: fan-in
    kind: aggregate
    key: counterparty
    metric: distinct(entity)
    op: ">"
    threshold: 30
    window: 1h
"""


def test_a_good_file_loads():
    spec = parse_scenarios(GOOD)
    assert spec.purpose == "fraud"
    assert spec.mapping == {"entity": "CustomerID"}
    trio, velocity, fan_in = spec.scenarios
    assert trio.items == ("a", "b", "c") and trio.min_distinct == 2 and trio.window_us == 72 * 3600 * 10**6
    assert velocity.metric == Metric("count") and velocity.where == "amount > 0"
    assert fan_in.key == "counterparty" and fan_in.metric == Metric("distinct", "entity")
    assert "at least 2 of [a, b, c]" in trio.describe()


def entry(**fields):
    base = {"id": "s1", "kind": "aggregate", "metric": "count", "op": ">=", "threshold": 3, "window": "1h"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize("fields, field, message", [
    ({"treshold": 4}, "treshold", "did you mean 'threshold'"),
    ({"window": "72"}, "window", "duration like"),
    ({"window": 5}, "window", "needs a unit"),
    ({"window": None}, "window", "required"),
    ({"metric": "median(amount)"}, "metric", "unknown metric"),
    ({"metric": "sum"}, "metric", "needs a column"),
    ({"op": "=>"}, "op", "expected one of"),
    ({"threshold": "lots"}, "threshold", "expected a number"),
    ({"severity": "urgent"}, "severity", "expected one of"),
    ({"kind": "sequence"}, "kind", "expected one of"),
    ({"where": "amount >"}, "where", "position"),
    ({"version": 0}, "version", "positive integer"),
    ({"kind": "combination", "items": ["a", "a"], "metric": None, "op": None, "threshold": None},
     "items", "listed twice"),
    ({"kind": "combination", "items": ["a", "b"], "min_distinct": 3, "metric": None, "op": None,
      "threshold": None}, "min_distinct", "from 1 to 2"),
    ({"kind": "combination", "items": ["a"], "metric": "count", "op": None, "threshold": None},
     "metric", "unknown field"),
    ({"where": "religion == 'x'"}, "where", "special-category"),
])
def test_errors_name_scenario_and_field(fields, field, message):
    with pytest.raises(ScenarioError) as info:
        build_scenario(entry(**fields), "fraud", "file.yaml")
    err = info.value
    assert err.scenario == "s1" and err.field == field
    assert message in str(err)
    assert str(err).startswith("file.yaml, scenario 's1', field")


@pytest.mark.parametrize("text, message", [
    ("version: 1\nscenarios: []\npurpose: fraud\n", "non-empty list"),
    ("version: 1\nscenarios: [{id: a}]\n", "declares one purpose"),
    ("version: 2\npurpose: fraud\nscenarios: [{id: a}]\n", "version 1"),
    ("version: 1\npurpose: fraud\nscenarios: [{id: a}]\nextra: 1\n", "unknown field"),
    ("version: 1\npurpose: fraud\nscenarios:\n - {id: a, kind: aggregate, metric: count, op: '>',"
     " threshold: 1, window: 1h}\n - {id: a, kind: aggregate, metric: count, op: '>', threshold: 1,"
     " window: 1h}\n", "used twice"),
    ("version: 1\npurpose: [fraud\n", "not valid YAML"),
])
def test_file_level_errors(text, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenarios(text)


def test_scenarios_from_objects_must_share_a_purpose():
    a = build_scenario(entry(id="a"), "fraud")
    b = build_scenario(entry(id="b"), "aml")
    assert assay.load_scenarios([a]).purpose == "fraud"
    with pytest.raises(ScenarioError, match="different purposes"):
        assay.load_scenarios([a, b])
