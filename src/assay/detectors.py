"""Detectors: the per-key state of scenarios, with an explicit lifecycle.

The protocol and the machinery every kind shares are in ``windowed``; the kinds in
``combinations`` and ``aggregates``. Scenarios that read the same rows (same kind, key and
``where``) share one detector.
"""

from __future__ import annotations

from . import where as where_lang
from .aggregates import AggregateDetector
from .combinations import CombinationDetector
from .scenarios import Scenario
from .windowed import MAX_EVIDENCE, Detector, WindowedDetector, empty_candidates


def build_detectors(scenarios: tuple[Scenario, ...], *, share_aggregates: bool = True) -> list[Detector]:
    """Combinations sharing key and ``where`` form one pack, and so do aggregates.

    ``share_aggregates=False``: one detector per aggregate, as earlier versions built them
    (checkpoints they wrote restore into these: ``Engine.restore``)."""
    packs: dict[tuple[str, str, str], list[Scenario]] = {}
    for s in scenarios:
        tree = "" if s.where_tree is None else where_lang.render(s.where_tree)
        # a scenario id is unique: a pack of its own
        pack = (s.kind, s.key, tree) if share_aggregates or s.kind == "combination" else (s.kind, s.id, "")
        packs.setdefault(pack, []).append(s)
    # aggregates first (as when each was its own detector), then combination packs
    return [AggregateDetector(tuple(members)) for (kind, _, _), members in packs.items() if kind == "aggregate"] + \
        [CombinationDetector(tuple(members)) for (kind, _, _), members in packs.items() if kind == "combination"]


__all__ = ["AggregateDetector", "CombinationDetector", "Detector", "MAX_EVIDENCE", "WindowedDetector",
           "build_detectors", "empty_candidates"]
