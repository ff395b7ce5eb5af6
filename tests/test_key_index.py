"""KeyIndex (a key's retained rows by position) against a scan of a plain list."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from assay import key_index
from assay.key_index import KeyIndex


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.lists(st.integers(0, 40), max_size=30), st.integers(0, 25),
                                st.lists(st.integers(0, 45), max_size=8)), max_size=25),
       collide=st.booleans(), tiny=st.booleans())
def test_lookups_equal_a_scan(steps, collide, tiny):
    """Appends, cuts at the front and lookups; ``collide``: keys hash to few values, so
    different keys share a list (callers compare keys) and the table probes past them;
    ``tiny``: the arrays start as small as can be, so that they grow (links moved, keys
    rehashed) again and again."""
    defaults = key_index.MIN_ROWS, key_index.MIN_SLOTS
    if tiny:
        key_index.MIN_ROWS, key_index.MIN_SLOTS = 1, 1
    try:
        def h(keys: list[int]) -> np.ndarray:
            return np.array([(k % 3 if collide else k * 0x9E3779B97F4A7C15 % 2**64) for k in keys], np.uint64)

        rows: list[int] = []  # key of every row ever retained, by position
        cut = 0
        index: KeyIndex | None = None
        for keys, advance, queries in steps:
            if index is None or not index.append(h(keys), len(rows), cut):  # full and not looked up since
                index = KeyIndex(h(rows[cut:] + keys), cut, len(set(rows[cut:] + keys)))
            rows += keys
            cut = min(len(rows), cut + advance)
            wanted = set(h(queries).tolist())
            expected = sorted(p for p in range(cut, len(rows)) if h([rows[p]])[0] in wanted)
            got_positions, which = index.lookup(h(queries), cut)
            got = got_positions.tolist()
            # each position names a query with its row's hash
            assert all(h([queries[w]])[0] == h([rows[p]])[0] for p, w in zip(got, which.tolist(), strict=True))
            assert sorted(got) == expected
            for value in wanted:  # each key's rows come in position order
                mine = [p for p in got if h([rows[p]])[0] == value]
                assert mine == sorted(mine)
    finally:
        key_index.MIN_ROWS, key_index.MIN_SLOTS = defaults


def test_a_key_lists_its_rows_in_order_and_forgets_rows_that_left():
    keys = np.array([5, 7, 5, 5, 7, 9], np.uint64)
    index = KeyIndex(keys, 0, 3)
    assert index.lookup(np.array([5], np.uint64), 0)[0].tolist() == [0, 2, 3]
    assert index.lookup(np.array([5, 7], np.uint64), 3)[0].tolist() in ([3, 4], [4, 3])
    assert index.append(np.array([5, 9], np.uint64), 6, 5)
    assert index.lookup(np.array([5], np.uint64), 5)[0].tolist() == [6]
    assert index.lookup(np.array([9], np.uint64), 5)[0].tolist() == [5, 7]
    assert index.lookup(np.array([11], np.uint64), 0)[0].tolist() == []


@settings(max_examples=100, deadline=None)
@given(codes=st.lists(st.integers(0, 5000) | st.integers(60_000, 70_000), max_size=400), parts=st.integers(1, 4),
       top=st.sampled_from([0, 1, 2047, 2048, 70_000, 5_000_000]), narrow=st.booleans(),
       scratch=st.sampled_from([None, "planned", "other size"]), bucket_rows=st.sampled_from([None, 3]))
def test_grouping_on_threads_equals_the_one_thread_sort(codes, parts, top, narrow, scratch, bucket_rows):
    """Few or many codes (many: sorted by buckets of codes, or not when a bucket holds more
    than ``bucket_rows``), on int64 or int32 codes (read as they are, not copied: they stay as
    they were), into a ``grouping.scratch`` buffer planned for these rows, for others, or none;
    and both equal a stable sort by code."""
    from unittest import mock

    from assay import grouping, kernels

    array = np.array(codes + [top], np.int32 if narrow else np.int64)
    given_codes = array.copy()
    n_codes = int(array.max()) + 1
    want_order, want_start = kernels.group_by_code(array.astype(np.int64), n_codes)
    assert want_order.tolist() == np.argsort(array, kind="stable").tolist()
    assert want_start.tolist() == [0, *np.cumsum(np.bincount(array, minlength=n_codes)).tolist()]
    buffers = None if scratch is None else grouping.scratch(array.size + (scratch == "other size"))
    with mock.patch.object(grouping, "MAX_BUCKET_ROWS", bucket_rows or grouping.MAX_BUCKET_ROWS):
        got_order, got_start = grouping.group_by_code(array, n_codes, parts, wide=not narrow, buffers=buffers)
    assert got_order.tolist() == want_order.tolist() and got_start.tolist() == want_start.tolist()
    assert got_order.dtype == (np.int32 if narrow else np.int64)
    assert array.tolist() == given_codes.tolist()
    if scratch == "planned" and narrow:
        assert np.shares_memory(got_order, buffers[0])


def test_a_full_index_grows_only_if_it_was_looked_up(monkeypatch):
    monkeypatch.setattr(key_index, "MIN_ROWS", 1)
    monkeypatch.setattr(key_index, "MIN_SLOTS", 1)
    index = KeyIndex(np.array([5, 7], np.uint64), 0, 2)
    assert not index.append(np.arange(100, 200, dtype=np.uint64), 2, 0)  # full, never read: dropped
    index.lookup(np.array([5], np.uint64), 0)
    assert index.append(np.arange(100, 200, dtype=np.uint64), 2, 1)  # read since: grows
    assert index.lookup(np.array([5, 150], np.uint64), 1)[0].tolist() == [52]  # 5 was cut
    assert index.lookup(np.array([7], np.uint64), 1)[0].tolist() == [1]


def test_a_new_index_over_a_few_keys_with_many_rows_each():
    """Its table is sized for the keys, not for one key per row (that bound refused it)."""
    index = KeyIndex(np.array([5, 7] * 5000, np.uint64), 0, 2)
    assert index.lookup(np.array([7], np.uint64), 9990)[0].tolist() == [9991, 9993, 9995, 9997, 9999]
