"""The run summary printed by ``assay run``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .api import RunResult


def print_summary(result: RunResult, *, out: str | None, rejects: Path | None,
                  console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"assay run — purpose {result.scenarios.purpose!r}", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("rows read", f"{result.rows_read:,}")
    table.add_row("rows rejected", f"{result.rejects.height:,}")
    counts = result.alerts_per_scenario()
    for s in result.scenarios.scenarios:
        table.add_row(f"alerts: {s.id}", f"{counts.get(s.id, 0):,}")
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
