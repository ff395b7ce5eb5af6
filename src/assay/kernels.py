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
from numba.typed import List

OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ = 0, 1, 2, 3, 4
OPS = {">": OP_GT, ">=": OP_GE, "<": OP_LT, "<=": OP_LE, "==": OP_EQ}

M_COUNT, M_SUM_INT, M_SUM_FLOAT, M_MEAN_INT, M_MEAN_FLOAT, M_MIN, M_MAX, M_DISTINCT = range(8)


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
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


@njit(cache=True)
def group_by_code(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable counting sort by dense code: (order, group_start) with one group per code."""
    counts = np.zeros(n_codes + 1, np.int64)
    for c in codes:
        counts[c + 1] += 1
    for k in range(n_codes):
        counts[k + 1] += counts[k]
    group_start = counts.copy()
    order = np.empty(codes.shape[0], np.int64)
    for i in range(codes.shape[0]):
        c = codes[i]
        order[counts[c]] = i
        counts[c] += 1
    return order, group_start


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def combination_kernel(group_start, ts, items, is_new, n_items,
                       combo_ptr, combo_items, item_ptr, item_combos, windows, min_distinct,
                       prev_ptr, prev_combos, max_evidence):
    """Evaluate a pack of combination scenarios sharing key and ``where``.

    The number of distinct listed items in the window of row i is the number of
    listed items whose latest occurrence up to i is at or after t_i - window,
    so one "last seen" time per item and key serves every scenario of the pack.
    """
    n_groups = group_start.shape[0] - 1
    n_combos = windows.shape[0]
    never = np.iinfo(np.int64).min
    last_ts = np.full(max(n_items, 1), never, np.int64)
    prev = np.zeros(max(n_combos, 1), np.bool_)
    touched_items = np.empty(max(n_items, 1), np.int64)
    touched_combos = np.empty(max(n_combos, 1), np.int64)
    combo_touched = np.zeros(max(n_combos, 1), np.bool_)
    member = np.zeros(max(n_items, 1), np.bool_)
    out_row = List.empty_list(np.int64)
    out_combo = List.empty_list(np.int64)
    out_value = List.empty_list(np.int64)
    ev_total = List.empty_list(np.int64)
    ev_ptr = List.empty_list(np.int64)
    ev_rows = List.empty_list(np.int64)
    ev_ptr.append(0)
    fin_group = List.empty_list(np.int64)
    fin_combo = List.empty_list(np.int64)
    for g in range(n_groups):
        a = group_start[g]
        b = group_start[g + 1]
        n_ti = 0
        n_tc = 0
        for p in range(prev_ptr[g], prev_ptr[g + 1]):
            c = prev_combos[p]
            prev[c] = True
            if not combo_touched[c]:
                combo_touched[c] = True
                touched_combos[n_tc] = c
                n_tc += 1
        for i in range(a, b):
            x = items[i]
            t = ts[i]
            if last_ts[x] == never:
                touched_items[n_ti] = x
                n_ti += 1
            last_ts[x] = t
            if not is_new[i]:
                continue
            for q in range(item_ptr[x], item_ptr[x + 1]):
                c = item_combos[q]
                lo = t - windows[c]
                cnt = 0
                for r in range(combo_ptr[c], combo_ptr[c + 1]):
                    if last_ts[combo_items[r]] >= lo:
                        cnt += 1
                cond = cnt >= min_distinct[c]
                if cond and not prev[c]:
                    out_row.append(i)
                    out_combo.append(c)
                    out_value.append(cnt)
                    for r in range(combo_ptr[c], combo_ptr[c + 1]):
                        member[combo_items[r]] = True
                    k = i
                    while k > a and ts[k - 1] >= lo:
                        k -= 1
                    total = 0
                    for r in range(k, i + 1):
                        if member[items[r]]:
                            if total < max_evidence:
                                ev_rows.append(r)
                            total += 1
                    ev_total.append(total)
                    ev_ptr.append(len(ev_rows))
                    for r in range(combo_ptr[c], combo_ptr[c + 1]):
                        member[combo_items[r]] = False
                prev[c] = cond
                if not combo_touched[c]:
                    combo_touched[c] = True
                    touched_combos[n_tc] = c
                    n_tc += 1
        for k in range(n_ti):
            last_ts[touched_items[k]] = never
        for k in range(n_tc):
            c = touched_combos[k]
            if prev[c]:
                fin_group.append(g)
                fin_combo.append(c)
            prev[c] = False
            combo_touched[c] = False
    return out_row, out_combo, out_value, ev_ptr, ev_rows, ev_total, fin_group, fin_combo
