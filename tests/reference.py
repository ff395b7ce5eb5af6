"""A slow, obvious evaluator written straight from SPEC.md. Shares no code with assay.

Events are dicts with event_id, entity, ts (integer microseconds), item, amount
(Decimal or None), quantity, counterparty and any other attribute, in arrival
order. A scenario is a RefScenario whose ``where`` is a Python predicate that
the test pairs with the equivalent text it gives to the engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

US = 1_000_000


@dataclass
class RefScenario:
    id: str
    kind: str  # combination | aggregate
    window_s: int
    key: str = "entity"
    where: Callable[[dict], bool] | None = None
    items: tuple[str, ...] = ()
    min_distinct: int = 0
    metric: str = "count"  # count | sum | min | max | mean | distinct
    column: str | None = None
    op: str = ">="
    threshold: Decimal = Decimal(0)
    version: int = 1
    severity: str = "medium"


def _num(row: dict, column: str) -> Decimal:
    value = row.get(column)
    if value is None:
        return Decimal(0) if column == "amount" else Decimal(1) if column == "quantity" else None
    return Decimal(repr(float(value))) if not isinstance(value, Decimal) else value


def _compare(value, op: str, threshold: Decimal) -> bool:
    a, b = Fraction(value), Fraction(threshold)
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b, "==": a == b}[op]


def _relevant(s: RefScenario, row: dict) -> bool:
    if row.get(s.key) in (None, ""):
        return False
    if s.where is not None and not s.where(row):
        return False
    if s.kind == "combination":
        return row.get("item") in s.items
    return True


def _value(s: RefScenario, window: list[dict]):
    if s.kind == "combination":
        return len({r["item"] for r in window})
    if s.metric == "count":
        return len(window)
    if s.metric == "distinct":
        return len({r.get(s.column) for r in window if r.get(s.column) not in (None, "")})
    values = [_num(r, s.column) for r in window]
    if s.metric == "sum":
        return sum(values, Decimal(0))
    if s.metric == "min":
        return min(values)
    if s.metric == "max":
        return max(values)
    return Fraction(sum(values, Decimal(0))) / len(values)


def reference_alerts(purpose: str, scenarios: list[RefScenario], events: list[dict]) -> list[dict]:
    canonical = sorted(range(len(events)), key=lambda i: (events[i]["ts"], i))
    ordered = [events[i] for i in canonical]
    position = []
    seen: dict[str, int] = {}
    for row in ordered:
        position.append(seen.get(row["event_id"], 0))
        seen[row["event_id"]] = position[-1] + 1
    alerts = []
    for order, s in enumerate(scenarios):
        by_key: dict[str, list[int]] = {}
        for idx, row in enumerate(ordered):
            if _relevant(s, row):
                by_key.setdefault(str(row[s.key]), []).append(idx)
        for key, idxs in by_key.items():
            prev = False
            for n, i in enumerate(idxs):
                t = ordered[i]["ts"]
                # rows up to and including r_i, back to the first one at or after t_i - window
                start = n
                while start > 0 and ordered[idxs[start - 1]]["ts"] >= t - s.window_s * US:
                    start -= 1
                window = [ordered[j] for j in idxs[start: n + 1]]
                value = _value(s, window)
                threshold = Decimal(s.min_distinct) if s.kind == "combination" else s.threshold
                op = ">=" if s.kind == "combination" else s.op
                cond = _compare(value, op, threshold)
                if cond and (n == 0 or not prev):
                    row = ordered[i]
                    text = "\x1f".join([purpose, s.id, str(s.version), key, row["event_id"], str(position[i])])
                    alerts.append({
                        "alert_id": hashlib.sha256(text.encode()).hexdigest()[:32],
                        "scenario": s.id,
                        "key": key,
                        "ts": t,
                        "trigger_event_id": row["event_id"],
                        "value": float(value),
                        "threshold": float(threshold),
                        "evidence": [r["event_id"] for r in window][:1000],
                        "evidence_truncated": len(window) > 1000,
                        "_sort": (t, canonical[i], order),
                    })
                prev = cond
    alerts.sort(key=lambda a: a.pop("_sort"))
    return alerts
