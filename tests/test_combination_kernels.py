"""The combination kernel's rarest-first checks: any order of the items, of the rows in memory,
and rows read packed (time and item in one value) give the same alerts."""

from __future__ import annotations

import numpy as np

from assay import combination_kernels as ck
from assay.combinations import CombinationDetector
from assay.scenarios import load_scenarios

PACK = """
version: 1
purpose: precursor-compliance
scenarios:
  - {id: ab, kind: combination, items: [a, b], window: 1h}
  - {id: abc2, kind: combination, items: [a, b, c], min_distinct: 2, window: 2h}
  - {id: bcd, kind: combination, items: [b, c, d], window: 30m}
"""


def detector() -> CombinationDetector:
    return CombinationDetector(tuple(load_scenarios(PACK).scenarios))


def test_checks_order_other_items_rarest_first_and_count_the_misses_allowed() -> None:
    det = detector()
    a, b, c, d = (det.item_codes[x] for x in "abcd")
    freq = np.zeros(4, np.int64)
    freq[[a, b, c, d]] = [40, 30, 20, 10]
    ptr, others, allow, window_q, rarest = ck.checks(det.combo_ptr, det.combo_items, det.item_ptr,
                                                     det.item_combos, det.min_distinct, det.windows, freq)
    got = {}
    for x in range(4):
        for q in range(det.item_ptr[x], det.item_ptr[x + 1]):
            c = int(det.item_combos[q])
            got[(x, c)] = (others[ptr[q]:ptr[q + 1]].tolist(), int(allow[q]))
            assert window_q[q] == det.windows[c]
            # the first check alone decides a miss only when no miss is allowed
            assert rarest[q] == (others[ptr[q]] if allow[q] == 0 else -1)
    assert got[(a, 0)] == ([b], 0)
    assert got[(a, 1)] == ([c, b], 1)  # two of three: one other item may be missing
    assert got[(b, 2)] == ([d, c], 0)
    assert got[(d, 2)] == ([c, b], 0)


def test_the_order_of_the_checks_and_of_the_rows_in_memory_do_not_change_the_result() -> None:
    det = detector()
    rng = np.random.default_rng(3)
    n = 5_000
    sizes = rng.integers(1, 30, 400)
    group_start = np.concatenate([[0], np.cumsum(sizes)])
    group_start = np.append(group_start[group_start < n], n).astype(np.int64)
    ts = np.zeros(n, np.int64)
    for g in range(group_start.size - 1):
        a, b = group_start[g], group_start[g + 1]
        ts[a:b] = np.sort(rng.integers(0, 4 * 3600 * 10**6, b - a))
    items = rng.integers(0, 4, n).astype(np.int32)
    is_new = rng.random(n) < 0.8
    prev_ptr = np.zeros(group_start.size, np.int64)
    # the same rows stored in another order, read through ``order`` (a batch run's way)
    stored_at = rng.permutation(n)
    order = np.empty(n, np.int32)
    order[:] = stored_at  # key-order row i lies at stored_at[i]
    shuffled = {"ts": np.empty_like(ts), "items": np.empty_like(items)}
    shuffled["ts"][stored_at] = ts
    shuffled["items"][stored_at] = items
    np.testing.assert_array_equal(shuffled["ts"][order], ts)
    results = []
    for freq in (np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1]), np.array([2, 4, 1, 3])):
        pack = ck.checks(det.combo_ptr, det.combo_items, det.item_ptr, det.item_combos, det.min_distinct,
                         det.windows, freq)
        # and each row's time and item packed in one value (a batch's way), in both orders
        packed, shuffled_packed = np.empty_like(ts), np.empty_like(ts)
        ck.pack_rows(ts, items, 12345, 3, packed)
        ck.pack_rows(shuffled["ts"], shuffled["items"], 12345, 3, shuffled_packed)
        for rows, bits in (((ts, items, None), 0), ((shuffled["ts"], shuffled["items"], order), 0),
                           ((packed, items, None), 3), ((shuffled_packed, shuffled["items"], order), 3)):
            out = ck.run_combination_kernel(group_start, *rows, is_new, 4, det.combo_ptr, det.combo_items,
                                            det.item_ptr, det.item_combos, *pack, det.windows,
                                            prev_ptr, np.zeros(0, np.int64), 1000, bits)
            results.append(out)
    assert results[0][0].size > 50  # alerts of every kind of check
    for other in results[1:]:
        for x, y in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(x, y)
