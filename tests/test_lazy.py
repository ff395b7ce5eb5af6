"""Kernels imported on first use (``assay.lazy``), in a fresh interpreter each: what a run's
process has loaded depends on what ran before in it."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from assay.lazy import kernels
kernels.warm_up(frozenset({"combination", "aggregate"}))
loaded = "scipy.linalg" in sys.modules
try:
    import scipy.linalg  # noqa: F401
    importable = True
except ImportError as exc:
    importable = "No module named 'scipy'" in str(exc)
print(json.dumps({"loaded": loaded, "importable": importable,
                  "numba": "numba.np.arraymath" in sys.modules,
                  "finder": any(type(f).__name__ == "_WithoutBlasProbe" for f in sys.meta_path)}))
"""


def test_loading_the_kernels_leaves_scipy_linalg_alone() -> None:
    # Numba's array functions probe for BLAS by importing scipy.linalg (0.1 s and a second
    # OpenBLAS spinning its threads beside a run): a kernel loaded from the cache must not
    # make it, the module must stay importable for the caller, and the import hook that skips
    # the probe is gone once it has
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert state == {"loaded": False, "importable": True, "numba": True, "finder": False}
