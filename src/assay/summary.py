"""The run summary printed by ``assay run``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .api import RunResult

MAX_SCENARIO_ROWS = 20  # more scenarios than this: the ten with most alerts, then one line


def print_summary(result: RunResult, *, out: str | None, rejects: Path | None,
                  console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"assay run — purpose {result.scenarios.purpose!r}", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("rows read", f"{result.rows_read:,}")
    table.add_row("rows rejected", f"{result.rejects.height:,}")
    counts = result.alerts_per_scenario()
    scenarios = [s.id for s in result.scenarios.scenarios]
    if len(scenarios) > MAX_SCENARIO_ROWS:
        # a pack of a thousand combinations: the ones that fired most, then the rest in one line
        top = sorted(scenarios, key=lambda sid: -counts.get(sid, 0))[:MAX_SCENARIO_ROWS // 2]
        rest = [sid for sid in scenarios if sid not in set(top)]
        for sid in top:
            table.add_row(f"alerts: {sid}", f"{counts.get(sid, 0):,}")
        silent = sum(1 for sid in rest if not counts.get(sid))
        table.add_row(f"alerts: {len(rest):,} other scenarios ({silent:,} without any)",
                      f"{sum(counts.get(sid, 0) for sid in rest):,}")
    else:
        for sid in scenarios:
            table.add_row(f"alerts: {sid}", f"{counts.get(sid, 0):,}")
    table.add_row("alerts: total", f"{result.alerts.height:,}")
    table.add_row("wall time", f"{result.seconds:.2f} s")
    table.add_row("rows/s", f"{result.rows_per_second:,.0f}")
    console.print(table)
    if out:
        console.print(f"alerts written to {out}")
    else:
        console.print("no --out given: alerts were not written")
    if rejects:
        console.print(f"{result.rejects.height:,} rejected row(s) written to {rejects} with their reasons")
