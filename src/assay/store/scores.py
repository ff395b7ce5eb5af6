"""Purpose-bound risk scores: one key, one purpose, from that purpose's alerts only.

score = 1 - prod(1 - p_s) over the scenarios that fired for the key, where p_s is the
scenario's precision measured from past dispositions in the same purpose (true positives
over true and false positives, with one pseudo-count of each so that a scenario with no
history counts as 0.5). There is deliberately no way to ask for a score without a purpose,
nor to combine purposes, and no table stores scores.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from .cases import Actor, NotFound
from .db import Store
from .models import Alert, Case


def scenario_precision(session, purpose: str) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """(true positives, dispositioned cases) per scenario, from closed-or-decided cases of one purpose."""
    rows = session.execute(
        select(Alert.scenario, Case.disposition, func.count(func.distinct(Case.id)))
        .join(Case, Case.id == Alert.case_id)
        .where(Alert.purpose == purpose, Case.purpose == purpose,
               Case.disposition.in_(["true_positive", "false_positive", "reported"]))
        .group_by(Alert.scenario, Case.disposition)).all()
    out: dict[str, list[int]] = {}
    for scenario, disposition, n in rows:
        tp_n = out.setdefault(scenario, [0, 0])
        tp_n[1] += n
        if disposition in ("true_positive", "reported"):
            tp_n[0] += n
    return {k: (v[0], v[1]) for k, v in out.items()}


def score(store: Store, key: str, purpose: str, actor: Actor) -> dict[str, Any]:
    if purpose not in actor.purposes:
        raise NotFound(f"no score for {key!r} in purpose {purpose!r}")
    with store.session() as session:
        alerts = session.execute(select(Alert).where(Alert.key == key, Alert.purpose == purpose)
                                 .order_by(Alert.ts)).scalars().all()
        if not alerts:
            raise NotFound(f"no score for {key!r} in purpose {purpose!r}")
        history = scenario_precision(session, purpose)
    reasons = []
    remaining = 1.0
    for scenario in sorted({a.scenario for a in alerts}):
        fired = [a for a in alerts if a.scenario == scenario]
        tp, n = history.get(scenario, (0, 0))
        precision = (tp + 1) / (n + 2)
        remaining *= 1 - precision
        reasons.append({"scenario": scenario, "alerts": len(fired), "first": fired[0].ts.isoformat(),
                        "last": fired[-1].ts.isoformat(), "precision": precision,
                        "dispositioned_cases": n, "true_positive_cases": tp})
    return {"key": key, "purpose": purpose, "score": 1 - remaining, "reasons": reasons}
