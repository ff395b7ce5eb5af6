"""The Python API: ``assay.run(scenarios, events)``. The CLI is a thin layer over it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .durations import parse_duration
from .engine import Engine
from .errors import UsageError
from .events import ReadResult, read_events
from .lazy import kernels
from .pushdown import read_relevant
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
    events: pl.DataFrame | None = None

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
    kinds = frozenset(s.kind for s in spec.scenarios)
    # Numba is imported and the kernels loaded on this thread while the input is read
    warming = threading.Thread(target=lambda: kernels.warm_up(kinds), name="assay-warm-up", daemon=True)
    warming.start()
    merged = {**spec.mapping, **(mapping or {})}
    needed = set().union(*(s.columns() for s in spec.scenarios))
    engine = Engine(spec)
    fast = None
    if isinstance(events, str | Path) or (isinstance(events, list | tuple)
                                          and all(isinstance(e, str | Path) for e in events)):
        paths = [Path(events)] if isinstance(events, str | Path) else [Path(e) for e in events]
        fast = read_relevant(paths, merged, needed, engine.prefilter)
    if fast is not None:
        read: ReadResult = fast
        rows_read = fast.rows_total
        if on_file:
            for name in fast.files:
                on_file(name, 0)
    else:
        read = read_events(events, mapping=merged, skip_errors=on_error == "skip", on_file=on_file,
                           columns=needed)
        rows_read = read.events.height + read.rejects.height
    read_done = time.perf_counter()
    all_ids = fast.all_ids if fast is not None else None
    if fast is not None and read.events.height == fast.rows_total:
        all_ids = None  # every row is relevant and in memory: no second look at the files
    elif fast is not None and fast.all_ids is not None and read.events.height * 20 < fast.rows_total:
        # few relevant rows: the rows sharing an event_id with one of them (trigger positions
        # need them) are read from the full file while the kernels load and run, not after
        scan = fast.all_ids.filter(pl.col("event_id").is_in(read.events["event_id"].unique().implode()))
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assay-ids")
        ids = pool.submit(scan.collect)
        pool.shutdown(wait=False)
        all_ids = ids.result
    warming.join()
    alerts = engine.run_batch(read.events, progress=on_detector, all_ids=all_ids)
    return RunResult(alerts, spec, rows_read, read.rejects, time.perf_counter() - started,
                     read_done - started, read.files, read.events)


def stream(scenarios: ScenarioSource, *, lateness: str | None = None) -> Engine:
    """An engine to feed micro-batches with ``push`` (rows in arrival order) and ``flush``."""
    lateness_us = parse_duration(lateness, allow_zero=True) if lateness else 0
    return Engine(load_scenarios(scenarios), lateness_us=lateness_us)
