"""The combination kernel's rarest-first checks: any order of the items, of the rows in memory,
rows read packed (time and item in one value), and rows skipping checks that cannot hold give
the same alerts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
    ptr, others, allow, window_q, rarest, _ = ck.checks(det.combo_ptr, det.combo_items, det.item_ptr,
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


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_items=st.sampled_from([3, 40, 300]), carried=st.booleans())
def test_rows_that_skip_their_checks_change_nothing(seed, n_items, carried):
    """A row skips its checks when none of its checks' rarest items is among the key's items
    so far (bits of code mod 256: more than 256 items share bits); the same kernel that never
    skips (every bit set) gives the same alerts, with combinations held before or not."""
    rng = np.random.default_rng(seed)
    lines = []
    for k in range(25):
        items = sorted({f"i{v}" for v in rng.integers(0, n_items, rng.integers(2, 5))})
        if len(items) < 2:
            continue
        partial = f", min_distinct: {len(items) - 1}" if len(items) > 2 and rng.random() < 0.3 else ""
        lines.append(f"  - {{id: c{k}, kind: combination, items: [{', '.join(items)}], "
                     f"window: {int(rng.integers(1, 6))}h{partial}}}")
    det = CombinationDetector(tuple(load_scenarios(
        "version: 1\npurpose: precursor-compliance\nscenarios:\n" + "\n".join(lines)).scenarios))
    n = 4_000
    sizes = rng.integers(1, 40, 300)
    group_start = np.concatenate([[0], np.cumsum(sizes)])
    group_start = np.append(group_start[group_start < n], n).astype(np.int64)
    n_groups = group_start.size - 1
    ts = np.zeros(n, np.int64)
    for g in range(n_groups):
        a, b = group_start[g], group_start[g + 1]
        ts[a:b] = np.sort(rng.integers(0, 24 * 3600 * 10**6, b - a))
    n_codes = len(det.item_codes)
    items = rng.integers(0, n_codes, n).astype(np.int32)
    is_new = np.ones(n, np.bool_)
    n_combos = det.windows.size
    held = [rng.choice(n_combos, rng.integers(0, 3), replace=False) if carried else [] for _ in range(n_groups)]
    prev_ptr = np.concatenate([[0], np.cumsum([len(h) for h in held])]).astype(np.int64)
    prev_combos = np.concatenate([np.asarray(h, np.int64) for h in held] + [np.zeros(0, np.int64)])
    freq = ck.item_counts(items, n_codes)
    *pack, bits = ck.checks(det.combo_ptr, det.combo_items, det.item_ptr, det.item_combos, det.min_distinct,
                            det.windows, freq)
    args = (group_start, ts, items, None, is_new, n_codes, det.combo_ptr, det.combo_items, det.item_ptr,
            det.item_combos)
    skipping = ck.run_combination_kernel(*args, *pack, bits, det.windows, prev_ptr, prev_combos, 1000, 0)
    never = ck.run_combination_kernel(*args, *pack, np.full_like(bits, ~np.uint64(0)), det.windows, prev_ptr,
                                      prev_combos, 1000, 0)
    for x, y in zip(skipping, never, strict=True):
        np.testing.assert_array_equal(x, y)
