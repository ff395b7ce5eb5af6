"""Eclat on tid-lists, in Numba: depth-first over equivalence classes, no recursion.

Items are coded 0..m-1 in ascending order of support (the usual Eclat order: rare
items first keeps the intersections short). Class d holds, for each member item, its
tid-list intersected with the path above it; the tid-lists of class d+1 are written
after those of class d in one buffer, so memory is bounded by one path of classes.
The first level is built by occurrence delivery from the baskets (``_deliver``), the
deeper ones by merging tid-lists (``_intersect``), pruned by the frequent pairs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernels import gallop


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
            j = gallop(buf, j, b_end, x)
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
def first_in_basket(basket, code, n_codes):
    """Which rows are the first of their (basket, item); rows of a basket are contiguous."""
    last = np.full(max(n_codes, 1), -1, np.int64)
    keep = np.empty(basket.shape[0], np.bool_)
    for r in range(basket.shape[0]):
        c = code[r]
        keep[r] = last[c] != basket[r]
        last[c] = basket[r]
    return keep


@njit(cache=True, nogil=True)
def horizontal(item_ptr, tids, n_baskets):
    """Baskets as item lists (each ascending) from the tid-lists: ``basket_ptr, basket_items``."""
    m = item_ptr.shape[0] - 1
    basket_ptr = np.zeros(n_baskets + 1, np.int64)
    for x in range(tids.shape[0]):
        basket_ptr[tids[x] + 1] += 1
    for b in range(n_baskets):
        basket_ptr[b + 1] += basket_ptr[b]
    fill = basket_ptr[:-1].copy()
    basket_items = np.empty(tids.shape[0], np.int32)
    for i in range(m):
        for x in range(item_ptr[i], item_ptr[i + 1]):
            t = tids[x]
            basket_items[fill[t]] = i
            fill[t] += 1
    return basket_ptr, basket_items


@njit(cache=True, nogil=True)
def _deliver(item, a0, a_len, buf, top, tid_capacity, basket_ptr, basket_items, bcursor, tails,
             tail_end, counter, touched, fill, min_count, pairs, next_item, next_start, next_len):
    """The class of the single item ``item`` (tid-list ``buf[a0:a0+a_len]``), by occurrence
    delivery as in LCM: each of its baskets appends itself to the tid-list of every later
    item it holds. Two passes over those baskets (count, then fill) replace one merge per
    pair, which is most of the work at this level. The counts are also row ``item`` of the
    frequent pairs, which prune the merges of the deeper levels (``_intersect``), where
    classes are small and re-reading whole baskets would cost more.

    Returns (members, new top), or (-1, capacity needed).
    """
    n_touched = 0
    n_tail = 0
    for x in range(a0, a0 + a_len):
        t = buf[x]
        # first-level items come in descending order: each basket's cursor moves left only
        p = bcursor[t]
        while basket_items[p] > item:
            p -= 1
        bcursor[t] = p
        # the baskets' tails are copied as they are read: the fill pass then reads them in
        # order instead of missing the cache once per basket again
        for y in range(p + 1, basket_ptr[t + 1]):
            j = basket_items[y]
            tails[n_tail] = j
            n_tail += 1
            if counter[j] == 0:
                touched[n_touched] = j
                n_touched += 1
            counter[j] += 1
        tail_end[x - a0] = n_tail
    # only the frequent ones are sorted: most items met are rare together with ``item``
    c = 0
    for k in range(n_touched):
        j = touched[k]
        if counter[j] >= min_count:
            next_item[c] = j
            c += 1
    next_item[:c].sort()
    need = top
    for k in range(c):
        j = next_item[k]
        pairs[item, j >> 6] |= np.uint64(1) << np.uint64(j & 63)
        next_start[k] = need
        next_len[k] = counter[j]
        fill[j] = need
        need += counter[j]
    if need > tid_capacity:
        for k in range(n_touched):
            counter[touched[k]] = 0
        return -1, need
    if c > 0:
        y0 = 0
        for x in range(a0, a0 + a_len):
            t = buf[x]
            for y in range(y0, tail_end[x - a0]):
                j = tails[y]
                if counter[j] >= min_count:
                    buf[fill[j]] = t
                    fill[j] += 1
            y0 = tail_end[x - a0]
    for k in range(n_touched):
        counter[touched[k]] = 0
    return c, need


@njit(cache=True, nogil=True)
def eclat(item_ptr, tids, min_count, max_len, tid_capacity, out_capacity,
          out_items, out_ptr, out_support, basket_ptr, basket_items):
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
    bcursor = basket_ptr[1:] - 1
    # which pairs (i < j) are frequent: bit j of row i, set as the first level is built;
    # the first level goes from the last item down, so rows above i are known in i's class
    pairs = np.zeros((max(m, 1), max((m + 63) >> 6, 1)), np.uint64)
    counter = np.zeros(max(m, 1), np.int32)
    touched = np.empty(max(m, 1), np.int32)
    fill = np.empty(max(m, 1), np.int64)
    tails = np.empty(max(tids.shape[0], 1), np.int32)
    tail_end = np.empty(max(tids.shape[0], 1), np.int64)
    top = 0
    n = 0
    for i in range(m - 1, -1, -1):
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
        if d == 0:
            c, top = _deliver(prefix[0], a0, a_len, buf, top, tid_capacity, basket_ptr, basket_items,
                              bcursor, tails, tail_end, counter, touched, fill, min_count, pairs,
                              member_item[1], member_start[1], member_len[1])
            if c < 0:
                return -1, 0, max(top, tid_capacity * 2)
        else:
            for j in range(i + 1, count[d]):
                b = member_item[d, j]
                if not (pairs[member_item[d, i], b >> 6] >> np.uint64(b & 63)) & np.uint64(1):
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
