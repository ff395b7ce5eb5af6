"""The Python API: ``assay.run(scenarios, events)``. The CLI is a thin layer over it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .coded_rows import read_coded
from .durations import parse_duration
from .engine import Engine
from .errors import UsageError
from .events import ReadResult, read_events
from .lazy import kernels
from .pushdown import file_scans, relevant_rows
from .scenarios import Scenario, ScenarioFile, load_scenarios

ScenarioSource = str | Path | ScenarioFile | Scenario | list[Scenario]


@dataclass
class RunResult:
    """Alerts with what a summary needs: rows read and rejected, timings."""

    alerts: pl.DataFrame
    scenarios: ScenarioFile
    rows_read: int
    rejects: pl.DataFrame
    seconds: float
    read_seconds: float
    files: list[str] = field(default_factory=list)
    # the rows the scenarios read, or how to read them again (a run that kept only codes)
    events_source: pl.DataFrame | Callable[[], pl.DataFrame] | None = None

    @property
    def events(self) -> pl.DataFrame | None:
        """The rows the scenarios read (every column), e.g. for the evidence rows of a store."""
        if callable(self.events_source):
            self.events_source = self.events_source()
        return self.events_source

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else float("inf")

    def alerts_per_scenario(self) -> dict[str, int]:
        counts = {s.id: 0 for s in self.scenarios.scenarios}
        for sid, n in self.alerts.group_by("scenario").len().iter_rows():
            counts[sid] = n
        return counts


def run(scenarios: ScenarioSource, events: object, *, mapping: Mapping[str, str] | None = None,
        on_error: str = "raise") -> pl.DataFrame:
    """Evaluate scenarios over events; return the alerts as a Polars DataFrame.

    ``scenarios``: a path, a YAML string, a ScenarioFile, a Scenario or a list of them.
    ``events``: a path, a list of paths, a Polars/pandas DataFrame or an Arrow table.
    ``mapping``: canonical column -> input column, e.g. ``{"entity": "CustomerID"}``.
    ``on_error``: ``"raise"`` stops at the first bad row; ``"skip"`` leaves bad rows out
    (see ``run_detailed`` for the rejected rows and their reasons).
    """
    return run_detailed(scenarios, events, mapping=mapping, on_error=on_error).alerts


def run_detailed(scenarios: ScenarioSource, events: object, *, mapping: Mapping[str, str] | None = None,
                 on_error: str = "raise", on_file: Callable[[str, int], None] | None = None,
                 on_detector: Callable[[int, int], None] | None = None) -> RunResult:
    if on_error not in ("raise", "skip"):
        raise UsageError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    started = time.perf_counter()
    spec = load_scenarios(scenarios)
    # Numba is imported and the kernels loaded on this thread while the input is read: not
    # earlier, where its import (Python holding the GIL) would hold back this thread's own
    kinds = frozenset(s.kind for s in spec.scenarios)
    warming = threading.Thread(target=lambda: kernels.warm_up(kinds), name="assay-warm-up", daemon=True)
    warming.start()
    merged = {**spec.mapping, **(mapping or {})}
    needed = set().union(*(s.columns() for s in spec.scenarios))
    engine = Engine(spec)
    paths = _paths(events)
    scans = file_scans(paths, merged, needed, engine.prefilter) if paths else None
    coders = engine.coders() if scans is not None else None
    # a scenario file of combination packs: the files' pages are read as codes when they can be
    coded = read_coded(scans, coders, on_file) if scans is not None and coders is not None else None
    all_ids: pl.LazyFrame | Callable[[], pl.DataFrame] | None = None
    if coded is not None:
        rows_read = coded.height
        read = ReadResult(pl.DataFrame(), files=[str(p) for p in paths])
    elif scans is not None:
        fast = relevant_rows(scans)
        read = fast
        rows_read = fast.rows_total
        if fast.events.height < fast.rows_total:  # else every row is at hand: no second look
            all_ids = fast.all_ids
        if on_file:
            for name in fast.files:
                on_file(name, 0)
    else:
        read = read_events(events, mapping=merged, skip_errors=on_error == "skip", on_file=on_file,
                           columns=needed)
        rows_read = read.events.height + read.rejects.height
    read_done = time.perf_counter()
    warming.join()
    if coded is not None:
        alerts = engine.run_coded(coded, progress=on_detector)
        source: pl.DataFrame | Callable[[], pl.DataFrame] = coded.events
    else:
        alerts = engine.run_batch(read.events, progress=on_detector, all_ids=all_ids)
        source = read.events
    return RunResult(alerts, spec, rows_read, read.rejects, time.perf_counter() - started,
                     read_done - started, read.files, source)


def _paths(events: object) -> list[Path]:
    """The files ``events`` names (none: it is data, not paths)."""
    if isinstance(events, str | Path):
        return [Path(events)]
    if isinstance(events, list | tuple) and events and all(isinstance(e, str | Path) for e in events):
        return [Path(e) for e in events]
    return []


def stream(scenarios: ScenarioSource, *, lateness: str | None = None) -> Engine:
    """An engine to feed micro-batches with ``push`` (rows in arrival order) and ``flush``."""
    lateness_us = parse_duration(lateness, allow_zero=True) if lateness else 0
    return Engine(load_scenarios(scenarios), lateness_us=lateness_us)
