"""Dense key codes: first-appearance order, empty values -1, exact for any string."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from assay import keys


def expected(values: list[str | None]) -> list[int]:
    seen: dict[str, int] = {}
    return [-1 if v is None else seen.setdefault(v, len(seen)) for v in values]


@pytest.mark.parametrize("n", [0, 1, 5, keys.TINY_ROWS, keys.TINY_ROWS + 1, 5_000])
def test_codes_in_order_of_first_appearance(n: int) -> None:
    rng = np.random.default_rng(n)
    values = [None if x == 0 else f"k{x}" for x in rng.integers(0, max(n // 3, 2), n)]
    codes, count = keys.dense_codes(pl.Series(values, dtype=pl.String))
    assert codes.tolist() == expected(values)
    assert count == len({v for v in values if v is not None})


def test_long_and_short_strings_and_other_types():
    """Strings past the 12 bytes an Arrow view holds inline, and numbers coded as their text."""
    values = ["x" * 13, "x" * 12, None, "x" * 13, "é" * 7, "x" * 12] * 20
    codes, count = keys.dense_codes(pl.Series(values, dtype=pl.String))
    assert codes.tolist() == expected(values) and count == 3
    codes, count = keys.dense_codes(pl.Series([5, 7, 5, None] * 30))
    assert codes.tolist() == [0, 1, 0, -1] * 30 and count == 2
