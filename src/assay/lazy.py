"""Modules imported on first use.

Importing Numba costs about 0.3 s of a short run's start-up. Modules that call the
compiled kernels hold a ``LazyModule`` instead, so that ``import assay`` does not pay
for it and a run can import and warm the kernels on a thread while it reads its input.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def load(self) -> ModuleType:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return self._module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.load(), attr)


kernels = LazyModule("assay.kernels")
