"""Dense integer codes for string columns (keys, distinct values): hash once, verify exactly.

Hashing 10 M strings takes ~0.1 s where a categorical cast of a million distinct
values takes ~1.5 s. Two different strings with the same 64-bit hash would merge
two keys, so every row is checked against the first value of its code; on the
(astronomically rare) mismatch the slow exact path is used instead.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from . import kernels


def dense_codes(values: pl.Series) -> tuple[np.ndarray, int]:
    """Codes 0..n-1 in order of first appearance; -1 for empty (null) values."""
    if values.len() == 0:
        return np.zeros(0, np.int64), 0
    text = values if values.dtype == pl.String else values.cast(pl.String)
    hashes = text.hash(seed=0).to_numpy()
    valid = text.is_not_null().to_numpy()
    estimate = int(text.approx_n_unique() * 1.1) + 16
    codes, first, n = kernels.dense_from_hashes(hashes, valid, estimate)
    while n < 0:
        estimate *= 4
        codes, first, n = kernels.dense_from_hashes(hashes, valid, estimate)
    representative = text.gather(first)
    check = pl.Series(np.where(codes >= 0, codes, 0))
    expected = representative.gather(check) if n else text
    same = (expected == text) | ~pl.Series(valid)
    if bool(same.all()):
        return codes, n
    exact = text.cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
    codes, n = kernels.densify(exact)
    return codes, n
