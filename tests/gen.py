"""Hypothesis strategies: events and scenarios, as engine input and as reference input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
from hypothesis import strategies as st

from reference import RefScenario

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE_US = 1_700_000_000 * 1_000_000
ENTITIES = ["a", "b", "ü-3"]
ITEMS = ["x", "y", "z", "ñ", "日本"]
COUNTERPARTIES = ["m1", "m2", None]
CHANNELS = ["web", "pos", None]
WINDOWS = [1, 60, 3600]

# (text for the engine, predicate for the reference); empty column -> false (SPEC)
WHERES = [
    ("amount > 0", lambda r: _amt(r) > 0),
    ("amount <= 10.5", lambda r: _amt(r) <= Decimal("10.5")),
    ("channel == 'web'", lambda r: r.get("channel") == "web"),
    ("not channel == 'web'", lambda r: r.get("channel") is not None and r.get("channel") != "web"),
    ("channel in ['web', 'pos'] and amount >= 0", lambda r: r.get("channel") in ("web", "pos") and _amt(r) >= 0),
    ("counterparty != 'm1' or amount < -1", lambda r: r.get("counterparty") is not None
     and (r.get("counterparty") != "m1" or _amt(r) < -1)),
    ("item not in ['x']", lambda r: r.get("item") is not None and r.get("item") != "x"),
]


def _amt(r: dict) -> Decimal:
    return r["amount"] if r.get("amount") is not None else Decimal(0)


@dataclass
class Case:
    events: list[dict]
    scenarios: list[RefScenario]
    yaml: str


@st.composite
def amounts(draw) -> Decimal | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    cents = draw(st.integers(-50_000, 50_000))
    return Decimal(cents).scaleb(-draw(st.sampled_from([0, 1, 2])))


@st.composite
def events(draw, max_rows: int = 40) -> list[dict]:
    n = draw(st.integers(0, max_rows))
    window = draw(st.sampled_from(WINDOWS))
    # timestamps built from steps that land exactly on, just inside and just past window edges
    steps = st.sampled_from([0, 0, 0, 1, window - 1, window, window + 1, 7])
    t = 0
    rows = []
    for i in range(n):
        t += draw(steps) * 1_000_000
        rows.append({
            "event_id": f"e{draw(st.integers(0, max(1, n // 2)))}",
            "entity": draw(st.sampled_from(ENTITIES)),
            "ts": BASE_US + t,
            "item": draw(st.sampled_from(ITEMS + [None])),
            "amount": draw(amounts()),
            "counterparty": draw(st.sampled_from(COUNTERPARTIES)),
            "channel": draw(st.sampled_from(CHANNELS)),
            "_i": i,
        })
    # arrival order need not be time order: shuffle some rows
    if draw(st.booleans()):
        rows = draw(st.permutations(rows))
    for r in rows:
        r.pop("_i")
    return rows


def _yaml_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@st.composite
def scenarios(draw) -> tuple[list[RefScenario], str]:
    count = draw(st.integers(1, 4))
    refs, lines = [], ["version: 1", "purpose: fraud", "scenarios:"]
    for k in range(count):
        sid = f"s{k}"
        window = draw(st.sampled_from(WINDOWS))
        key = draw(st.sampled_from(["entity", "entity", "counterparty"]))
        where = draw(st.sampled_from([None] * 4 + WHERES))
        lines += [f"  - id: {sid}", f"    window: {window}s", f"    key: {key}"]
        if where:
            lines.append(f"    where: {_yaml_str(where[0])}")
        pred = where[1] if where else None
        if draw(st.booleans()):
            items = draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=4, unique=True))
            md = draw(st.integers(1, len(items)))
            lines += ["    kind: combination", f"    items: [{', '.join(_yaml_str(i) for i in items)}]",
                      f"    min_distinct: {md}"]
            refs.append(RefScenario(sid, "combination", window, key, pred, tuple(items), md))
        else:
            metric = draw(st.sampled_from(["count", "sum", "min", "max", "mean", "distinct"]))
            column = None
            if metric in ("sum", "min", "max", "mean"):
                column = "amount"
            elif metric == "distinct":
                column = draw(st.sampled_from(["item", "counterparty", "channel", "entity"]))
            op = draw(st.sampled_from([">", ">=", "<", "<=", "=="]))
            if metric in ("count", "distinct"):
                threshold = Decimal(draw(st.integers(0, 5)))
            else:
                threshold = Decimal(draw(st.integers(-20_000, 20_000))).scaleb(-draw(st.sampled_from([0, 1, 2])))
            text = metric if column is None else f"{metric}({column})"
            lines += ["    kind: aggregate", f"    metric: {text}", f"    op: {_yaml_str(op)}",
                      f"    threshold: {threshold}"]
            refs.append(RefScenario(sid, "aggregate", window, key, pred, metric=metric, column=column,
                                    op=op, threshold=threshold))
    return refs, "\n".join(lines) + "\n"


def to_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame({
        "event_id": pl.Series([r["event_id"] for r in rows], dtype=pl.String),
        "entity": pl.Series([r["entity"] for r in rows], dtype=pl.String),
        "ts": pl.Series([r["ts"] for r in rows], dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        "item": pl.Series([r["item"] for r in rows], dtype=pl.String),
        "amount": pl.Series([None if r["amount"] is None else float(r["amount"]) for r in rows],
                            dtype=pl.Float64),
        "counterparty": pl.Series([r["counterparty"] for r in rows], dtype=pl.String),
        "channel": pl.Series([r["channel"] for r in rows], dtype=pl.String),
    })


def comparable(alerts: pl.DataFrame) -> list[dict]:
    """Engine alerts in the reference's shape."""
    out = []
    for a in alerts.iter_rows(named=True):
        out.append({
            "alert_id": a["alert_id"], "scenario": a["scenario"], "key": a["key"],
            "ts": (a["ts"] - EPOCH) // timedelta(microseconds=1),
            "trigger_event_id": a["trigger_event_id"], "value": a["value"], "threshold": a["threshold"],
            "evidence": list(a["evidence"]), "evidence_truncated": a["evidence_truncated"],
        })
    return out
