"""Modules imported on first use.

Importing Numba costs about 0.3 s of a short run's start-up. Modules that call the
compiled kernels hold a ``LazyModule`` instead, so that ``import assay`` does not pay
for it and a run can import and warm the kernels on a thread while it reads its input.

Numba loads a cached kernel only after "refreshing" its target context, which imports
every implementation registry it has (0.28-0.37 s here, more than importing Numba):
what compiling needs, not running compiled code. Kernels load from the cache without it
(``_load_cached``); a kernel that must be compiled still gets it, from the compiler. Either
way Numba's array functions are imported without their BLAS probe (``_WithoutBlasProbe``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import sys
import threading
from importlib.machinery import ModuleSpec, PathFinder
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


class _WithoutBlasProbe(importlib.abc.MetaPathFinder):
    """Numba's NumPy array functions (``numba.np.arraymath``) imported without their BLAS probe.

    The module checks for BLAS as it is imported, by importing ``scipy.linalg``: when SciPy
    is installed, 0.11 s of Python holding the GIL and a second OpenBLAS whose threads spin
    beside the run's own (~0.1 s of CPU). Numba imports the module for the first compile, and
    for a cached kernel whose environment names it (the combination kernel's). The kernels use
    no linear algebra: while the module runs, the probe it takes from ``numba.np.linalg`` reports
    no BLAS; ``numba.np.linalg``'s own is left as it is, and nothing is hidden from other
    threads' imports."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name != _ARRAYMATH or _ARRAYMATH in sys.modules:
            return None
        spec = PathFinder.find_spec(name, path)  # type: ignore[arg-type]
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            linalg = importlib.import_module("numba.np.linalg")
            probe = getattr(linalg, "ensure_blas", None)
            linalg.ensure_blas = _no_blas  # type: ignore[attr-defined]
            try:
                run(module)
            finally:
                if probe is not None:
                    linalg.ensure_blas = probe  # type: ignore[attr-defined]
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(self)

        loader.exec_module = exec_module  # type: ignore[method-assign]  # this spec's own loader
        return spec


_ARRAYMATH = "numba.np.arraymath"


def _no_blas() -> None:
    raise ImportError("assay's kernels use no BLAS")


def skip_blas_probe() -> None:
    """Import ``numba.np.arraymath``, whenever something does, without its BLAS probe."""
    with _LOADING:
        if _ARRAYMATH not in sys.modules and not any(isinstance(f, _WithoutBlasProbe) for f in sys.meta_path):
            sys.meta_path.insert(0, _WithoutBlasProbe())


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
    skip_blas_probe()
    try:
        from numba.core import caching
        from numba.core.runtime import nrt
    except ImportError:
        return
    cache = getattr(caching, "Cache", None)
    if cache is None or not all(hasattr(cache, a) for a in ("load_overload", "_load_overload",
                                                             "_guard_against_spurious_io_errors")):
        return

    def _load_cached(self, sig, target_context):  # type: ignore[no-untyped-def]
        nrt.rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    cache.load_overload = _load_cached


kernels = LazyModule("assay.kernels")
