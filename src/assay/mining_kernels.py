"""Eclat on tid-lists, in Numba: depth-first over equivalence classes, no recursion.

Items are coded 0..m-1 in ascending order of support (the usual Eclat order: rare
items first keeps the intersections short). Class d holds, for each member item, its
tid-list intersected with the path above it; the tid-lists of class d+1 are written
after those of class d in one buffer, so memory is bounded by one path of classes.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _intersect(buf, a0, a_len, b0, b_len, out0):
    """Write the intersection of two sorted tid-lists of ``buf`` at ``out0``; return its length.

    A short list against a long one gallops (exponential then binary search) through the
    long one: O(a log b) instead of O(a + b), the common case with rare items first.
    """
    if a_len > b_len:
        a0, a_len, b0, b_len = b0, b_len, a0, a_len
    k = out0
    a_end = a0 + a_len
    b_end = b0 + b_len
    if a_len * 16 < b_len:
        j = b0
        for i in range(a0, a_end):
            x = buf[i]
            step = 1
            hi = j
            while hi < b_end and buf[hi] < x:
                j = hi + 1
                hi = j + step
                step *= 2
            if hi > b_end:
                hi = b_end
            lo = j
            while lo < hi:
                mid = (lo + hi) // 2
                if buf[mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            j = lo
            if j >= b_end:
                break
            if buf[j] == x:
                buf[k] = x
                k += 1
                j += 1
        return k - out0
    # branch-free merge: which list advances depends on data the CPU cannot predict
    i = a0
    j = b0
    while i < a_end and j < b_end:
        x = buf[i]
        y = buf[j]
        buf[k] = x
        k += x == y
        i += x <= y
        j += x >= y
    return k - out0


@njit(cache=True, nogil=True)
def pair_counts(basket_ptr, basket_items, m):
    """Support of every pair of items (upper triangle), counted from the baskets directly:
    far cheaper than intersecting the tid-lists of all m*m/2 pairs, most of them rare."""
    counts = np.zeros((m, m), np.int32)
    for b in range(basket_ptr.shape[0] - 1):
        for x in range(basket_ptr[b], basket_ptr[b + 1]):
            i = basket_items[x]
            for y in range(x + 1, basket_ptr[b + 1]):
                j = basket_items[y]
                if i < j:
                    counts[i, j] += 1
                else:
                    counts[j, i] += 1
    return counts


@njit(cache=True, nogil=True)
def eclat(item_ptr, tids, min_count, max_len, tid_capacity, out_capacity,
          out_items, out_ptr, out_support, pairs):
    """Frequent itemsets of items 0..m-1 (tid-lists ``tids[item_ptr[i]:item_ptr[i+1]]``).

    Writes itemsets to out_items/out_ptr/out_support; returns (count, items written,
    tid buffer needed) with count -1 when a buffer was too small (caller retries bigger).
    """
    m = item_ptr.shape[0] - 1
    depth = max(1, min(max_len, m))
    buf = np.empty(tid_capacity, np.int32)
    member_item = np.empty((depth, max(m, 1)), np.int64)
    member_start = np.empty((depth, max(m, 1)), np.int64)
    member_len = np.empty((depth, max(m, 1)), np.int64)
    count = np.zeros(depth, np.int64)
    cursor = np.zeros(depth, np.int64)
    class_end = np.zeros(depth, np.int64)
    prefix = np.empty(depth, np.int64)
    top = 0
    n = 0
    for i in range(m):
        length = item_ptr[i + 1] - item_ptr[i]
        if length < min_count:
            continue
        if top + length > tid_capacity:
            return -1, 0, tids.shape[0] * 2
        buf[top:top + length] = tids[item_ptr[i]:item_ptr[i + 1]]
        member_item[0, n] = i
        member_start[0, n] = top
        member_len[0, n] = length
        top += length
        n += 1
    count[0] = n
    class_end[0] = top
    n_out = 0
    n_items_out = 0
    out_ptr[0] = 0
    d = 0
    while d >= 0:
        i = cursor[d]
        if i >= count[d]:
            d -= 1
            continue
        cursor[d] += 1
        prefix[d] = member_item[d, i]
        if n_out >= out_capacity or n_items_out + d + 1 > out_items.shape[0]:
            return -1, 0, 0
        for k in range(d + 1):
            out_items[n_items_out + k] = prefix[k]
        n_items_out += d + 1
        out_support[n_out] = member_len[d, i]
        n_out += 1
        out_ptr[n_out] = n_items_out
        if d + 1 >= depth:
            continue
        top = class_end[d]
        c = 0
        a0 = member_start[d, i]
        a_len = member_len[d, i]
        for j in range(i + 1, count[d]):
            if pairs[member_item[d, i], member_item[d, j]] < min_count:
                continue  # the pair is rare, so is every itemset holding it
            need = min(a_len, member_len[d, j])
            if top + need > tid_capacity:
                return -1, 0, tid_capacity * 2
            got = _intersect(buf, a0, a_len, member_start[d, j], member_len[d, j], top)
            if got >= min_count:
                member_item[d + 1, c] = member_item[d, j]
                member_start[d + 1, c] = top
                member_len[d + 1, c] = got
                top += got
                c += 1
        if c > 0:
            count[d + 1] = c
            cursor[d + 1] = 0
            class_end[d + 1] = top
            d += 1
    return n_out, n_items_out, 0
