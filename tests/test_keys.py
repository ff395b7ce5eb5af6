"""Dense key codes: first-appearance order, empty values -1, exact even when hashes collide."""

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


def test_values_sharing_a_hash_get_codes_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "_hashes", lambda text: np.full(text.len(), 42, np.uint64))
    values = [f"v{i % 7}" for i in range(500)] + [None]
    codes, count = keys.dense_codes(pl.Series(values, dtype=pl.String))
    assert codes.tolist() == expected(values) and count == 7
