"""A progress bar for long runs, shown only on a terminal and only when the work is large."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

# Inputs above this size take more than a couple of seconds to read and evaluate.
LARGE_INPUT_BYTES = 20_000_000


class Progress:
    def __init__(self, total_bytes: int, *, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty() and total_bytes >= LARGE_INPUT_BYTES
        self._bar: Any = None
        self._reading = None
        self._detecting = None
        self.started = time.perf_counter()

    def __enter__(self) -> Progress:
        if self.enabled:
            # rich is imported only when a bar is shown: start-up time counts on short runs
            from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                     TimeElapsedColumn(), transient=True)
            self._bar.start()
            self._reading = self._bar.add_task("reading events", total=None)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def file_done(self, name: str, rows: int) -> None:
        if self._bar is not None and self._reading is not None:
            self._bar.update(self._reading, description=f"read {name} ({rows:,} rows)")

    def detector_done(self, done: int, total: int) -> None:
        if self._bar is None:
            return
        if self._detecting is None:
            if self._reading is not None:
                self._bar.update(self._reading, visible=False)
            self._detecting = self._bar.add_task("evaluating scenarios", total=total)
        self._bar.update(self._detecting, completed=done)
