"""Grouping rows by dense code on two threads: an LSD radix sort whose passes split the rows.

Each pass counts 11-bit digits in each part of the rows (one thread per part), gives
every (digit, part) its slice of the output (part 0's rows of a digit before part 1's, so
the sort stays stable), and scatters each part on its own thread into its slices. The
kernels release the GIL. Same result as ``kernels.group_by_code``; used for large inputs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

DIGIT_BITS = 11
DIGITS = 1 << DIGIT_BITS


@njit(cache=True, nogil=True)
def digit_counts(keys: np.ndarray, start: int, stop: int, shift: int) -> np.ndarray:
    counts = np.zeros(DIGITS, np.int64)
    for i in range(start, stop):
        counts[(keys[i] >> shift) & (DIGITS - 1)] += 1
    return counts


@njit(cache=True, nogil=True)
def scatter(keys: np.ndarray, order: np.ndarray, keys_out: np.ndarray, order_out: np.ndarray,
            start: int, stop: int, shift: int, slots: np.ndarray) -> None:
    """Move rows start..stop to their digit's next slot (``slots``: this part's first slot per digit)."""
    pos = slots.copy()
    for i in range(start, stop):
        d = (keys[i] >> shift) & (DIGITS - 1)
        p = pos[d]
        keys_out[p] = keys[i]
        order_out[p] = order[i]
        pos[d] = p + 1


def group_by_code(codes: np.ndarray, n_codes: int, parts: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of rows by dense code: (order, group_start), one group per code."""
    n = codes.shape[0]
    bounds = [n * k // parts for k in range(parts + 1)]
    # 32-bit keys and positions when they fit: half the memory traffic of every pass
    # (10 M rows, 1 M codes: 0.21-0.40 s -> 0.16 s)
    dtype = np.int32 if n < 2**31 and n_codes < 2**31 else np.int64
    keys = codes.astype(dtype)
    order = np.arange(n, dtype=dtype)
    keys_out = np.empty(n, dtype)
    order_out = np.empty(n, dtype)
    bits = 0
    while (1 << bits) < n_codes:
        bits += DIGIT_BITS
    starts, stops = bounds[:-1], bounds[1:]
    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="assay-radix") as pool:
        for shift in range(0, bits, DIGIT_BITS):
            shifts = [shift] * parts
            counts = np.stack(list(pool.map(digit_counts, [keys] * parts, starts, stops, shifts)))
            # slot of (part k, digit d): rows of smaller digits, then of digit d in parts before k
            digit_start = np.concatenate([[0], np.cumsum(counts.sum(axis=0))[:-1]])
            slots = digit_start[None, :] + np.cumsum(counts, axis=0) - counts
            list(pool.map(scatter, [keys] * parts, [order] * parts, [keys_out] * parts, [order_out] * parts,
                          starts, stops, shifts, [np.ascontiguousarray(row) for row in slots]))
            keys, keys_out = keys_out, keys
            order, order_out = order_out, order
    group_start = np.zeros(n_codes + 1, np.int64)
    np.cumsum(np.bincount(codes, minlength=n_codes), out=group_start[1:])
    return order.astype(np.int64, copy=False), group_start
