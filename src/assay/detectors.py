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


def build_detectors(scenarios: tuple[Scenario, ...]) -> list[Detector]:
    """Combinations sharing key and ``where`` form one pack, and so do aggregates."""
    packs: dict[tuple[str, str, str], list[Scenario]] = {}
    for s in scenarios:
        tree = "" if s.where_tree is None else where_lang.render(s.where_tree)
        packs.setdefault((s.kind, s.key, tree), []).append(s)
    # aggregates first (as when each was its own detector), then combination packs
    return [AggregateDetector(tuple(members)) for (kind, _, _), members in packs.items() if kind == "aggregate"] + \
        [CombinationDetector(tuple(members)) for (kind, _, _), members in packs.items() if kind == "combination"]


def build_single(scenarios: tuple[Scenario, ...]) -> list[Detector]:
    """The detectors of earlier versions, one per aggregate: checkpoints they wrote restore
    into these (``Engine.restore``)."""
    packs: dict[tuple[str, str], list[Scenario]] = {}
    detectors: list[Detector] = []
    for s in scenarios:
        if s.kind == "combination":
            tree = "" if s.where_tree is None else where_lang.render(s.where_tree)
            packs.setdefault((s.key, tree), []).append(s)
        else:
            detectors.append(AggregateDetector((s,)))
    return detectors + [CombinationDetector(tuple(members)) for members in packs.values()]


__all__ = ["AggregateDetector", "CombinationDetector", "Detector", "MAX_EVIDENCE", "WindowedDetector",
           "build_detectors", "build_single", "empty_candidates"]
