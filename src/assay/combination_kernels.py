"""Numba kernels of combination packs: one pass over the rows of each key, in canonical order.

The number of distinct listed items in the window of row i is the number of listed items
whose latest occurrence up to i is at or after t_i - window, so one "last seen" time per
item and key serves every scenario of a pack. A row of item x checks the combinations that
list x. Most checks fail (the key never bought the other items), so each (x, combination)
check reads the other items rarest first and stops at the first miss it cannot afford:
one predictable load for most checks instead of a loop over every item (measured on the
core benchmark's 1,000 combinations, 10 M rows, one thread: 1.3 s -> 0.3 s).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from .prefetch import prefetch

# rows asked for ahead of their turn, when read through an order
AHEAD = 16
# A key's rows so far set the bit (item code mod 256) of their items in SEEN_WORDS words: a
# row whose every check ends at one rarest item none of which the key has had skips its
# checks (a customer's few items meet few of a pack's rarest items)
SEEN_WORDS = 4


@njit(cache=True, nogil=True)
def checks(combo_ptr, combo_items, item_ptr, item_combos, min_distinct, windows, freq):
    """For each (item, combination) entry q of ``item_combos``: the combination's other items,
    rarest first by ``freq`` (CSR ``others_ptr``/``others``), how many of them may be
    missing from the window while the combination still holds (``allow``), and side by side
    in q's order the combination's window (``window_q``) and, when one miss fails the check,
    the rarest other item (``rarest``, else -1): most checks end at that item, and reading it
    needs no combination's fields first (10 M rows, 1,000 combinations: 0.38-0.52 -> 0.29-0.34 s);
    and per item the bits of its checks' rarest items (``rarest_bits``, see ``SEEN_WORDS``)."""
    n_q = item_combos.shape[0]
    others_ptr = np.zeros(n_q + 1, np.int64)
    for x in range(item_ptr.shape[0] - 1):
        for q in range(item_ptr[x], item_ptr[x + 1]):
            c = item_combos[q]
            others_ptr[q + 1] = combo_ptr[c + 1] - combo_ptr[c] - 1
    for q in range(n_q):
        others_ptr[q + 1] += others_ptr[q]
    others = np.empty(others_ptr[n_q], np.int64)
    allow = np.empty(n_q, np.int64)
    for x in range(item_ptr.shape[0] - 1):
        for q in range(item_ptr[x], item_ptr[x + 1]):
            c = item_combos[q]
            k = others_ptr[q]
            for r in range(combo_ptr[c], combo_ptr[c + 1]):
                y = combo_items[r]
                if y == x:
                    continue
                # insertion sort: a combination lists a handful of items
                j = k
                while j > others_ptr[q] and freq[others[j - 1]] > freq[y]:
                    others[j] = others[j - 1]
                    j -= 1
                others[j] = y
                k += 1
            # x itself is in its own row's window: min_distinct - 1 of the others must be
            allow[q] = others_ptr[q + 1] - others_ptr[q] - (min_distinct[c] - 1)
    window_q = np.empty(n_q, np.int64)
    rarest = np.full(n_q, -1, np.int64)
    for q in range(n_q):
        window_q[q] = windows[item_combos[q]]
        if allow[q] == 0 and others_ptr[q + 1] > others_ptr[q]:
            rarest[q] = others[others_ptr[q]]
    # per item: the bits (item code mod 256) of its checks' rarest items, or every bit when a
    # check of it needs more than one miss to fail
    rarest_bits = np.zeros((max(item_ptr.shape[0] - 1, 1), SEEN_WORDS), np.uint64)
    for x in range(item_ptr.shape[0] - 1):
        for q in range(item_ptr[x], item_ptr[x + 1]):
            if rarest[q] < 0:
                rarest_bits[x, :] = ~np.uint64(0)
                break
            y = rarest[q] & (64 * SEEN_WORDS - 1)
            rarest_bits[x, y >> 6] |= np.uint64(1) << np.uint64(y & 63)
    return others_ptr, others, allow, window_q, rarest, rarest_bits


@njit(cache=True, nogil=True, inline="always")
def _at(values, order, i):
    """The value of the i-th row in key order: ``values`` are in that order already (no
    ``order``), or ``order[i]`` is where the row is."""
    if order is None:
        return values[i]
    return values[order[i]]


@njit(cache=True, nogil=True, inline="always")
def _row(ts, items, order, i, item_bits):
    """(item, time) of the i-th row in key order; with ``item_bits``, ``ts`` holds both
    (time << item_bits | item, one value to read per row) and ``items`` is not read."""
    if item_bits > 0:
        v = _at(ts, order, i)
        return v & ((np.int64(1) << item_bits) - 1), v >> item_bits
    return np.int64(_at(items, order, i)), _at(ts, order, i)


@njit(cache=True, nogil=True)
def pack_rows(ts, items, base, item_bits, out):
    """``out[i] = (ts[i] - base) << item_bits | items[i]`` (a negative item, a row no
    combination reads: 0). A batch's kernel then reads one value per row through its order
    instead of two arrays' (10 M rows: one random read fewer per row)."""
    for i in range(ts.shape[0]):
        x = items[i]
        out[i] = ((ts[i] - base) << item_bits) | (x if x >= 0 else 0)


@njit(cache=True, nogil=True)
def times_sorted(values, item_bits):
    """True when the times of ``values`` (``pack_rows`` values when ``item_bits`` > 0, plain
    times when 0) never decrease."""
    for i in range(1, values.shape[0]):
        if (values[i] >> item_bits) < (values[i - 1] >> item_bits):
            return False
    return True


@njit(cache=True, nogil=True)
def usable_rows(keys, items, n_items):
    """(rows per item code, rows no combination reads: without an item of the pack (a
    negative code) or without a key) in one pass."""
    counts = np.zeros(max(n_items, 1), np.int64)
    unusable = 0
    for i in range(items.shape[0]):
        x = items[i]
        if x >= 0:
            counts[x] += 1
        if x < 0 or keys[i] < 0:
            unusable += 1
    return counts, unusable


@njit(cache=True, nogil=True)
def group_codes(keys, items, n_keys, out):
    """Each row's group for the kernel (``out``, which may be ``keys`` itself): its key code,
    or ``n_keys`` (a group past the keys', cut off) for a row no combination reads."""
    for i in range(items.shape[0]):
        k = keys[i]
        out[i] = n_keys if items[i] < 0 or k < 0 else k


@njit(cache=True, nogil=True)
def item_counts(items, n_items):
    """Rows per item code (negative codes: rows without an item of the pack)."""
    counts = np.zeros(max(n_items, 1), np.int64)
    for x in items:
        if x >= 0:
            counts[x] += 1
    return counts


@njit(cache=True, nogil=True)
def combination_kernel(group_start, ts, items, order, is_new, n_items,
                       combo_ptr, combo_items, item_ptr, item_combos, others_ptr, others, allow, window_q,
                       rarest, rarest_bits, windows, prev_ptr, prev_combos, max_evidence, item_bits,
                       out_row, out_combo, out_value, ev_ptr, ev_rows, ev_total, fin_group, fin_combo):
    """Evaluate a pack of combination scenarios sharing key and ``where``.

    Rows are read in key order: ``ts`` and ``items`` are in that order, or (a batch run) they
    are in the batch's order and ``order`` lists the rows in key order; each row is then
    asked for ahead of its turn (reading them through ``order`` costs less than gathering
    them into key order first: no two arrays of every row to write and read back). With
    ``item_bits`` (a batch run), ``ts`` holds each row's time and item together
    (``pack_rows``): one read per row.
    Outputs go to caller-provided buffers (growing arrays inside the loop would make
    Numba reference-count them on every iteration). Returns (alerts, evidence rows,
    final pairs) counts; when a count exceeds its buffer, the caller calls again with
    buffers of the returned sizes.
    """
    n_groups = group_start.shape[0] - 1
    n_rows = is_new.shape[0]
    n_combos = windows.shape[0]
    never = np.iinfo(np.int64).min
    last_ts = np.full(max(n_items, 1), never, np.int64)
    prev = np.zeros(max(n_combos, 1), np.bool_)
    touched_items = np.empty(max(n_items, 1), np.int64)
    touched_combos = np.empty(max(n_combos, 1), np.int64)
    combo_touched = np.zeros(max(n_combos, 1), np.bool_)
    member = np.zeros(max(n_items, 1), np.bool_)
    seen = np.zeros(SEEN_WORDS, np.uint64)
    cap_out = out_row.shape[0]
    cap_ev = ev_rows.shape[0]
    cap_fin = fin_group.shape[0]
    n_out = 0
    n_ev = 0
    n_fin = 0
    ev_ptr[0] = 0
    for g in range(n_groups):
        a = group_start[g]
        b = group_start[g + 1]
        n_ti = 0
        n_tc = 0
        # no combination has held at a row of this key yet: a failed check has nothing to reset
        any_held = prev_ptr[g + 1] > prev_ptr[g]
        seen[:] = 0
        for p in range(prev_ptr[g], prev_ptr[g + 1]):
            c = prev_combos[p]
            prev[c] = True
            if not combo_touched[c]:
                combo_touched[c] = True
                touched_combos[n_tc] = c
                n_tc += 1
        for i in range(a, b):
            if order is not None and i + AHEAD < n_rows:
                prefetch(ts, order[i + AHEAD])
                if item_bits == 0:
                    prefetch(items, order[i + AHEAD])
            x, t = _row(ts, items, order, i, item_bits)
            if last_ts[x] == never:
                touched_items[n_ti] = x
                n_ti += 1
            last_ts[x] = t
            bit = x & (64 * SEEN_WORDS - 1)
            seen[bit >> 6] |= np.uint64(1) << np.uint64(bit & 63)
            if not is_new[i]:
                continue
            if not any_held:
                hit = np.uint64(0)
                for w in range(SEEN_WORDS):
                    hit |= seen[w] & rarest_bits[x, w]
                if hit == 0:  # no check can hold, and none held before: nothing to reset
                    continue
            for q in range(item_ptr[x], item_ptr[x + 1]):
                y = rarest[q]
                if y >= 0 and last_ts[y] < t - window_q[q]:
                    if any_held:
                        prev[item_combos[q]] = False
                    continue
                c = item_combos[q]
                lo = t - windows[c]
                misses = 0
                cond = True
                for r in range(others_ptr[q], others_ptr[q + 1]):
                    if last_ts[others[r]] < lo:
                        misses += 1
                        if misses > allow[q]:
                            cond = False
                            break
                if not cond:
                    prev[c] = False  # was it True, the combination is in touched_combos already
                    continue
                if not prev[c]:
                    for r in range(combo_ptr[c], combo_ptr[c + 1]):
                        member[combo_items[r]] = True
                    k = i
                    while k > a and _row(ts, items, order, k - 1, item_bits)[1] >= lo:
                        k -= 1
                    total = 0
                    for r in range(k, i + 1):
                        if member[_row(ts, items, order, r, item_bits)[0]]:
                            if total < max_evidence:
                                if n_ev < cap_ev:
                                    ev_rows[n_ev] = r
                                n_ev += 1
                            total += 1
                    for r in range(combo_ptr[c], combo_ptr[c + 1]):
                        member[combo_items[r]] = False
                    if n_out < cap_out:
                        out_row[n_out] = i
                        out_combo[n_out] = c
                        out_value[n_out] = combo_ptr[c + 1] - combo_ptr[c] - misses
                        ev_total[n_out] = total
                        ev_ptr[n_out + 1] = n_ev
                    n_out += 1
                prev[c] = True
                any_held = True
                if not combo_touched[c]:
                    combo_touched[c] = True
                    touched_combos[n_tc] = c
                    n_tc += 1
        for k in range(n_ti):
            last_ts[touched_items[k]] = never
        for k in range(n_tc):
            c = touched_combos[k]
            if prev[c]:
                if n_fin < cap_fin:
                    fin_group[n_fin] = g
                    fin_combo[n_fin] = c
                n_fin += 1
            prev[c] = False
            combo_touched[c] = False
    return n_out, n_ev, n_fin


def run_combination_kernel(*args):
    """``combination_kernel`` with output buffers sized for it (a second call when too small)."""
    n_rows = args[4].shape[0]
    caps = (n_rows // 16 + 1024, n_rows // 4 + 4096, n_rows // 16 + 1024)
    for _ in range(2):
        out = (np.empty(caps[0], np.int64), np.empty(caps[0], np.int64), np.empty(caps[0], np.int64),
               np.empty(caps[0] + 1, np.int64), np.empty(caps[1], np.int64), np.empty(caps[0], np.int64),
               np.empty(caps[2], np.int64), np.empty(caps[2], np.int64))
        n_out, n_ev, n_fin = combination_kernel(*args, *out)
        if n_out <= caps[0] and n_ev <= caps[1] and n_fin <= caps[2]:
            rows, combos, values, ev_ptr, ev_rows, ev_total, fin_g, fin_c = out
            return (rows[:n_out], combos[:n_out], values[:n_out], ev_ptr[:n_out + 1], ev_rows[:n_ev],
                    ev_total[:n_out], fin_g[:n_fin], fin_c[:n_fin])
        caps = (max(n_out, 1), max(n_ev, 1), max(n_fin, 1))
    raise AssertionError("combination kernel outputs did not fit buffers of their own size")


def run_combination_kernel_split(group_start, ts, items, is_new, n_items, combo_ptr, combo_items, item_ptr,
                                 item_combos, windows, min_distinct, prev_ptr, prev_combos, max_evidence,
                                 parts: int = 2, order=None, item_bits: int = 0, freq=None):
    """``run_combination_kernel`` over ``parts`` runs of whole groups on as many threads (the
    kernel releases the GIL; groups are independent), outputs joined as one call's would be.
    ``order``: as the kernel takes it (rows of ``ts`` and ``items`` in key order);
    ``item_bits``: ``ts`` holds ``pack_rows`` values (``items`` is then not read, but for
    the counts when ``freq``, ``item_counts(items, n_items)``, is not given)."""
    n_rows = is_new.shape[0]
    n_groups = group_start.shape[0] - 1
    # rarest first among the rows at hand: any order gives the same result
    if freq is None:
        freq = item_counts(items, n_items)
    pack = (combo_ptr, combo_items, item_ptr, item_combos,
            *checks(combo_ptr, combo_items, item_ptr, item_combos, min_distinct, windows, freq), windows)
    if parts < 2 or n_groups < parts:
        return run_combination_kernel(group_start, ts, items, order, is_new, n_items, *pack, prev_ptr,
                                      prev_combos, max_evidence, item_bits)
    cuts = np.searchsorted(group_start, [n_rows * k // parts for k in range(1, parts)])
    bounds = [0, *sorted(set(int(c) for c in cuts if 0 < c < n_groups)), n_groups]

    def run(g0: int, g1: int):  # type: ignore[no-untyped-def]
        a, b = group_start[g0], group_start[g1]
        p0, p1 = prev_ptr[g0], prev_ptr[g1]
        rows = (ts[a:b], items[a:b], None) if order is None else (ts, items, order[a:b])
        return run_combination_kernel(group_start[g0:g1 + 1] - a, *rows, is_new[a:b], n_items,
                                      *pack, prev_ptr[g0:g1 + 1] - p0, prev_combos[p0:p1], max_evidence,
                                      item_bits)

    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    with ThreadPoolExecutor(max_workers=len(spans), thread_name_prefix="assay-kernel") as pool:
        results = list(pool.map(lambda span: run(*span), spans))
    rows, combos, values, ev_ptr, ev_rows, ev_total, fin_g, fin_c = ([] for _ in range(8))
    ev_done = 0
    for (g0, _), out in zip(spans, results, strict=True):
        a = group_start[g0]
        rows.append(out[0] + a)
        combos.append(out[1])
        values.append(out[2])
        ev_ptr.append(out[3][1:] + ev_done)
        ev_rows.append(out[4] + a)
        ev_total.append(out[5])
        fin_g.append(out[6] + g0)
        fin_c.append(out[7])
        ev_done += out[4].shape[0]
    return (np.concatenate(rows), np.concatenate(combos), np.concatenate(values),
            np.concatenate([np.zeros(1, np.int64), *ev_ptr]), np.concatenate(ev_rows), np.concatenate(ev_total),
            np.concatenate(fin_g), np.concatenate(fin_c))


def warm_up_packing() -> None:
    """Load the packing kernels (a batch reading Parquet pages packs its rows with them as it
    reads: before the combination kernel, which loads while they run)."""
    for writable in (False, True):
        # a batch's times, read in place from Polars (read-only) or decoded from Parquet pages
        ts = np.zeros(1, np.int64)
        ts.setflags(write=writable)
        pack_rows(ts, np.zeros(1, np.int32), 0, 1, np.zeros(1, np.int64))
        times_sorted(ts, 1)


def warm_up() -> None:
    """Load (or compile) the kernels on tiny inputs: see ``kernels.warm_up``."""
    warm_up_packing()
    codes = np.zeros(1, np.int32)
    usable_rows(codes, codes, 1)
    group_codes(codes, codes, 1, codes)
    one = np.zeros(1, np.int64)
    two = np.zeros(2, np.int64)
    # a stream's rows in key order; a batch's through an order (int32 from the counting sort of
    # a large batch, int64 from the one-thread sort of a small one, e.g. a selective scan's)
    for order in (None, np.zeros(1, np.int32), np.zeros(1, np.int64)):
        run_combination_kernel_split(two, one, np.zeros(1, np.int32), np.ones(1, np.bool_), 1, np.array([0, 1]),
                                     one, np.array([0, 1]), one, one, np.ones(1, np.int64), two,
                                     np.zeros(0, np.int64), 10, 1, order)
