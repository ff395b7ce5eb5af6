"""Modules imported on first use.

Importing Numba costs about 0.3 s of a short run's start-up. Modules that call the
compiled kernels hold a ``LazyModule`` instead, so that ``import assay`` does not pay
for it and a run can import and warm the kernels on a thread while it reads its input.

Numba loads a cached kernel only after "refreshing" its target context, which imports
every implementation registry it has (0.28-0.37 s here, more than importing Numba):
what compiling needs, not running compiled code. Kernels load from the cache without it
(``_load_cached``); a kernel that must be compiled still gets it, from the compiler.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
                    load_cached_without_refresh()
                    self._module = module
        return self._module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.load(), attr)


def load_numba_registries() -> None:
    """Load Numba's NumPy implementations now, without its BLAS probe.

    Numba's first compile imports them, and one of them checks for BLAS by importing
    ``scipy.linalg``: 0.2 s of a short run when SciPy happens to be installed, and a second
    OpenBLAS whose threads spin beside the run's own. The kernels use no linear algebra, so
    ``scipy.linalg`` is hidden for that moment (the probe then reports no BLAS) and
    importable again afterwards.
    """
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    from numba.core.registry import cpu_target

    with _blas_probe_hidden():
        cpu_target.target_context.refresh()


@contextmanager
def _blas_probe_hidden() -> Iterator[None]:
    sys.modules["scipy.linalg"] = None  # type: ignore[assignment]  # importing it now fails at once
    try:
        yield
    finally:
        if sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


@contextmanager
def _arraymath_without_blas_probe() -> Iterator[None]:
    """Numba's NumPy array functions imported, if they are now, without the BLAS probe
    (``load_numba_registries``): a cached kernel that calls one of them imports the module
    as it loads (its environment names it), probe and all. Only the combination kernel
    does here, so the kernels that reading Parquet pages waits for load without it."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        yield
        return
    with _blas_probe_hidden():
        yield


_PATCHED: list[bool] = []


def load_cached_without_refresh() -> None:
    """Make Numba load cached kernels without refreshing its target context first.

    Loading one rebuilds its machine code with the context's code generator and needs
    Numba's runtime (NRT, which the refresh would initialize); a cache miss returns None
    and the dispatcher compiles, and the compiler refreshes the context itself. Where
    Numba's cache is not what this expects, it is left as it is (and registries load the
    way they always did)."""
    if _PATCHED:
        return
    _PATCHED.append(True)
    try:
        from numba.core import caching
        from numba.core.runtime import nrt
    except ImportError:
        load_numba_registries()
        return
    cache = getattr(caching, "Cache", None)
    if cache is None or not all(hasattr(cache, a) for a in ("load_overload", "_load_overload",
                                                             "_guard_against_spurious_io_errors")):
        load_numba_registries()
        return

    def _load_cached(self, sig, target_context):  # type: ignore[no-untyped-def]
        nrt.rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors(), _arraymath_without_blas_probe():
            data = self._load_overload(sig, target_context)
        if data is None:  # to be compiled: the registries first, without the BLAS probe
            load_numba_registries()
        return data

    cache.load_overload = _load_cached


kernels = LazyModule("assay.kernels")
