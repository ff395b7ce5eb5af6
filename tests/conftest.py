from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ASSAY_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"


@pytest.fixture
def data_dir() -> Path:
    if not DATA.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"shared data folder not found at {DATA}")
        pytest.skip(f"shared data folder not found at {DATA}")
    return DATA
