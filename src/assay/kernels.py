"""Numba kernels: one pass over relevant rows grouped by key, in canonical order.

Rows arrive sorted by (key group, canonical order). Rows flagged ``is_new``
are evaluation points; the others were evaluated in an earlier micro-batch and
only rebuild the window (SPEC: the window of r_i holds rows j <= i with
t_j >= t_i - window). Comparisons that decide an alert are exact: sums and
means of decimal columns run on scaled integers against a rational threshold.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .grouping import sort_by_code as group_by_code  # the one-thread grouping by key

OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ = 0, 1, 2, 3, 4
OPS = {">": OP_GT, ">=": OP_GE, "<": OP_LT, "<=": OP_LE, "==": OP_EQ}

M_COUNT, M_SUM_INT, M_SUM_FLOAT, M_MEAN_INT, M_MEAN_FLOAT, M_MIN, M_MAX, M_DISTINCT = range(8)


@njit(cache=True, nogil=True, inline="always")
def _cmp_int(a: int, op: int, b: int) -> bool:
    if op == OP_GT:
        return a > b
    if op == OP_GE:
        return a >= b
    if op == OP_LT:
        return a < b
    if op == OP_LE:
        return a <= b
    return a == b


@njit(cache=True, nogil=True, inline="always")
def _cmp_float(a: float, op: int, b: float) -> bool:
    if op == OP_GT:
        return a > b
    if op == OP_GE:
        return a >= b
    if op == OP_LT:
        return a < b
    if op == OP_LE:
        return a <= b
    return a == b


@njit(cache=True, nogil=True, inline="always")
def gallop(values, start, end, x):
    """First position in ``values[start:end]`` (ascending) holding ``x`` or more, ``end`` if
    none: steps doubling from ``start``, then a binary search within the last step. A place
    d positions on costs O(log d), so ascending queries each start where the last ended."""
    step = 1
    hi = start
    while hi < end and values[hi] < x:
        start = hi + 1
        hi = start + step
        step *= 2
    if hi > end:
        hi = end
    while start < hi:
        mid = (start + hi) >> 1
        if values[mid] < x:
            start = mid + 1
        else:
            hi = mid
    return start


@njit(cache=True, nogil=True)
def densify(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Map arbitrary non-negative codes to 0..n-1 in order of first appearance; -1 stays -1."""
    top = 0
    for c in codes:
        if c > top:
            top = c
    lut = np.full(top + 1, -1, np.int64)
    out = np.empty(codes.shape[0], np.int64)
    n = 0
    for i in range(codes.shape[0]):
        c = codes[i]
        if c < 0:
            out[i] = -1
            continue
        if lut[c] < 0:
            lut[c] = n
            n += 1
        out[i] = lut[c]
    return out, n


@njit(cache=True, nogil=True)
def aggregate_kernel(group_start, ts, ivals, fvals, codes, n_codes, is_new, prev_init,
                     metric, op, window, thr_f, thr_num, thr_den, scale):
    """Evaluate one aggregate scenario. Returns (alert, value, window_start, last_cond)."""
    n = ts.shape[0]
    n_groups = group_start.shape[0] - 1
    alert = np.zeros(n, np.bool_)
    value = np.full(n, np.nan)
    wstart = np.zeros(n, np.int64)
    last = np.full(n_groups, -1, np.int8)
    counts = np.zeros(max(n_codes, 1), np.int64)
    dq = np.empty(max(n, 1), np.int64)
    for g in range(n_groups):
        a = group_start[g]
        b = group_start[g + 1]
        j = a
        s_int = 0
        s_f = 0.0
        distinct = 0
        dq_head = a
        dq_tail = a
        prev = prev_init[g]
        any_new = False
        for i in range(a, b):
            t = ts[i]
            if metric == M_SUM_INT or metric == M_MEAN_INT:
                s_int += ivals[i]
            elif metric == M_SUM_FLOAT or metric == M_MEAN_FLOAT:
                s_f += fvals[i]
            elif metric == M_MIN:
                while dq_tail > dq_head and fvals[dq[dq_tail - 1]] >= fvals[i]:
                    dq_tail -= 1
                dq[dq_tail] = i
                dq_tail += 1
            elif metric == M_MAX:
                while dq_tail > dq_head and fvals[dq[dq_tail - 1]] <= fvals[i]:
                    dq_tail -= 1
                dq[dq_tail] = i
                dq_tail += 1
            elif metric == M_DISTINCT:
                c = codes[i]
                if c >= 0:
                    counts[c] += 1
                    if counts[c] == 1:
                        distinct += 1
            lo = t - window
            while ts[j] < lo:
                if metric == M_SUM_INT or metric == M_MEAN_INT:
                    s_int -= ivals[j]
                elif metric == M_SUM_FLOAT or metric == M_MEAN_FLOAT:
                    s_f -= fvals[j]
                elif metric == M_DISTINCT:
                    c = codes[j]
                    if c >= 0:
                        counts[c] -= 1
                        if counts[c] == 0:
                            distinct -= 1
                j += 1
            while dq_tail > dq_head and dq[dq_head] < j:
                dq_head += 1
            if not is_new[i]:
                continue
            n_in = i - j + 1
            if metric == M_COUNT:
                v = float(n_in)
                cond = _cmp_int(n_in * thr_den, op, thr_num)
            elif metric == M_DISTINCT:
                v = float(distinct)
                cond = _cmp_int(distinct * thr_den, op, thr_num)
            elif metric == M_SUM_INT:
                v = s_int / scale
                cond = _cmp_int(s_int * thr_den, op, thr_num)
            elif metric == M_MEAN_INT:
                v = s_int / (scale * n_in)
                cond = _cmp_int(s_int * thr_den, op, thr_num * n_in)
            elif metric == M_SUM_FLOAT:
                v = s_f
                cond = _cmp_float(v, op, thr_f)
            elif metric == M_MEAN_FLOAT:
                v = s_f / n_in
                cond = _cmp_float(v, op, thr_f)
            else:
                v = fvals[dq[dq_head]]
                cond = _cmp_float(v, op, thr_f)
            value[i] = v
            wstart[i] = j
            alert[i] = cond and not prev
            prev = cond
            any_new = True
        if metric == M_DISTINCT:
            for k in range(j, b):
                c = codes[k]
                if c >= 0:
                    counts[c] = 0
        if any_new:
            last[g] = 1 if prev else 0
    return alert, value, wstart, last


@njit(cache=True, nogil=True)
def subset_groups(order: np.ndarray, codes: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Restrict a (code, canonical) order of all rows to the rows in ``mask``.

    Returns the order as positions among the masked rows, and the start of each
    code's group in it.
    """
    n = mask.shape[0]
    pos = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        if mask[i]:
            pos[i] = k
            k += 1
    out = np.empty(k, np.int64)
    starts = np.empty(k + 1, np.int64)
    m = 0
    n_groups = 0
    last = -2
    for j in range(n):
        r = order[j]
        if mask[r]:
            c = codes[r]
            if c != last:
                starts[n_groups] = m
                n_groups += 1
                last = c
            out[m] = pos[r]
            m += 1
    starts[n_groups] = m
    return out, starts[:n_groups + 1]


@njit(cache=True, nogil=True)
def decimal_scale(values: np.ndarray, max_decimals: int) -> tuple[int, np.ndarray]:
    """Smallest d <= max_decimals with every value a whole number of 10**-d; (-1, ...) if none."""
    d = 0
    for v in values:
        if not np.isfinite(v):
            return -1, np.zeros(0, np.int64)
        while True:
            f = 10.0**d
            if np.round(v * f) / f == v:
                break
            d += 1
            if d > max_decimals:
                return -1, np.zeros(0, np.int64)
    f = 10.0**d
    out = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        out[i] = np.int64(np.round(values[i] * f))
    return d, out


def warm_up(kinds: frozenset[str] = frozenset({"combination", "aggregate"})) -> None:
    """Load the kernels a run needs from Numba's cache (or compile them) on tiny inputs.

    Run in a thread while Polars reads the input (Polars releases the GIL), so
    that the loading overlaps with I/O instead of following it; only the kernels of
    the scenario kinds at hand, each costing tens of milliseconds to load.
    """
    one = np.zeros(1, np.int64)
    two = np.zeros(2, np.int64)
    flag = np.ones(1, np.bool_)
    from . import digest_kernels, grouping, view_kernels

    if "combination" in kinds:
        # first what a batch of packs reading Parquet pages (``coded_rows``) runs from its first
        # row group on: its threads wait for these while the rest loads beside them
        from . import combination_kernels, parquet_kernels

        view_kernels.warm_up(codes_only=True)
        parquet_kernels.warm_up()
        combination_kernels.warm_up()  # the packing kernels first
    view_kernels.warm_up()  # codes of strings
    group_by_code(one, 1)
    digest_kernels.warm_up()  # alert ids of a large batch
    # large key columns are sorted on two threads
    for small in (one, one.astype(np.int32)):
        grouping.code_counts(small, 0, 1, 1)
        grouping.place(small, 0, 1, np.zeros(1, np.int64), np.zeros(1, np.int32))
        grouping.bucket_counts(small, 0, 1, 1)
        grouping.place_in_buckets(small, 0, 1, np.zeros(1, np.int64), np.zeros(1, np.uint32))
    order = np.zeros(1, np.int32)
    grouping.sort_buckets(0, 1, two, 1, order.view(np.uint32), order, two.copy(), np.zeros(1, np.uint32))
    if "aggregate" in kinds:
        densify(one)
        subset_groups(one, one, flag)
        decimal_scale(np.zeros(1), 2)
        aggregate_kernel(two, one, one, np.zeros(1), one, 1, flag, np.zeros(1, np.bool_),
                         M_COUNT, OP_GE, 1, 1.0, 1, 1, 1.0)
