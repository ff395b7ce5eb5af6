"""Modules imported on first use.

Importing Numba costs about 0.3 s of a short run's start-up. Modules that call the
compiled kernels hold a ``LazyModule`` instead, so that ``import assay`` does not pay
for it and a run can import and warm the kernels on a thread while it reads its input.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

_LOADING = threading.RLock()


class LazyModule:
    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def load(self) -> ModuleType:
        if self._module is None:
            # detectors run on two threads: Numba's registries must not load twice at once
            with _LOADING:
                if self._module is None:
                    module = importlib.import_module(self._name)
                    load_numba_registries()
                    self._module = module
        return self._module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.load(), attr)


def load_numba_registries() -> None:
    """Load Numba's NumPy implementations now, without its BLAS probe.

    Numba's first compile or cache load imports them, and one of them checks for BLAS by
    importing ``scipy.linalg``: 0.2 s of a short run when SciPy happens to be installed.
    The kernels use no linear algebra, so ``scipy.linalg`` is hidden for that moment (the
    probe then reports no BLAS) and importable again afterwards.
    """
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    from numba.core.registry import cpu_target

    sys.modules["scipy.linalg"] = None  # type: ignore[assignment]  # importing it now fails at once
    try:
        cpu_target.target_context.refresh()
    finally:
        if sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


kernels = LazyModule("assay.kernels")
