"""EventRows (rows per event_id in a stream) against a plain dict rebuilt at every step."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay import event_rows
from assay.event_rows import EventRows
from assay.snapshots import resolve


def batch_frame(rows: list[tuple[str, int]]) -> pl.DataFrame:
    frame = pl.DataFrame({"event_id": [r[0] for r in rows], "ts": [r[1] for r in rows]},
                         schema={"event_id": pl.String, "ts": pl.Int64})
    return frame.group_by("event_id").agg(pl.len().cast(pl.Int64).alias("_n"), pl.col("ts").max().alias("_last"))


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 5)), max_size=6),
                                st.integers(0, 8), st.sampled_from(["", "full", "delta", "restart"])),
                      max_size=12),
       horizon=st.integers(0, 12), merged=st.sampled_from([event_rows.MAX_MERGED, 2, 5]))
def test_counts_and_expiry_equal_a_plain_model(steps, horizon, merged):
    """Also through checkpoints: a full frame, delta frames on top, and a restart from them;
    and with runs that stop merging at a few entries (as a big state's do at MAX_MERGED)."""
    cap, event_rows.MAX_MERGED = event_rows.MAX_MERGED, merged
    try:
        check_against_model(steps, horizon)
    finally:
        event_rows.MAX_MERGED = cap


def check_against_model(steps, horizon):
    state, model = EventRows(), {}
    stored: list[pl.DataFrame] = []
    now = 0
    for rows, advance, checkpoint in steps:
        # micro-batches in canonical order: each one's rows lie above the previous watermark
        placed = [(eid, now + dt) for eid, dt in rows]
        seen_before = {eid: model[eid][0] for eid, _ in placed if eid in model}
        for eid, ts in placed:
            n, last = model.get(eid, (0, ts))
            model[eid] = (n + 1, max(last, ts))
        earlier = state.add(batch_frame(placed))  # what the ids seen before had until now
        assert dict(earlier.iter_rows()) == seen_before
        now += 6 + advance
        cutoff = now - horizon
        model = {k: v for k, v in model.items() if v[1] >= cutoff}
        state.expire(cutoff)
        assert state.items() == model
        if checkpoint == "full" or (checkpoint and not stored):
            stored = [state.frame()]
        elif checkpoint == "delta":
            stored.append(state.frame(delta=True))
        elif checkpoint == "restart":
            stored.append(state.frame(delta=True))
            state = EventRows.from_frame(stored[0])
            for delta in stored[1:]:
                state.apply(delta)
            assert state.items() == model
        assert dict(zip(*state.counts(sorted(model)).to_dict(as_series=False).values(), strict=True)) == \
            {k: v[0] for k, v in model.items()}
    restored = EventRows.from_frame(state.frame())
    assert restored.items() == state.items()


def test_the_ids_are_no_python_objects():
    """A stream's millions of ids must not be walked by every full collection (a pause) nor
    cost a Python object each."""
    import gc

    state = EventRows()
    state.capture()
    gc.collect()
    before = len(gc.get_objects())
    for start in range(0, 30_000, 1000):
        state.add(pl.DataFrame({"event_id": [f"e{i}" for i in range(start, start + 1000)],
                                "_n": [1] * 1000, "_last": list(range(start, start + 1000))}))
    state.add(pl.DataFrame({"event_id": ["e5"], "_n": [2], "_last": [50_000]}))  # an id seen before
    state.expire(1500)
    gc.collect()
    assert len(gc.get_objects()) - before < 500
    items = state.items()
    assert items["e5"] == (3, 50_000) and "e1000" not in items and "e2000" in items
    assert len(state) == 30_000 - 1500 + 1


@settings(max_examples=50, deadline=None)
@given(steps=st.lists(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=5), max_size=8))
def test_ids_sharing_a_hash_are_counted_apart(monkeypatch_hash, steps):
    """Every id hashed alike: the ids themselves tell them apart."""
    state, model = EventRows(), {}
    for ts, ids in enumerate(steps):
        for eid in ids:
            model[eid] = model.get(eid, 0) + 1
        state.add(batch_frame([(eid, ts) for eid in ids]))
        got = state.counts(["a", "b", "c", "d", "e"])
        assert dict(zip(got["_eid"], got["_n"], strict=True)) == model


@pytest.fixture(scope="module")
def monkeypatch_hash():
    import numpy as np

    from assay import event_rows

    original = event_rows._hash
    event_rows._hash = lambda ids: np.full(ids.len(), 7, np.uint64)
    yield
    event_rows._hash = original


def test_deltas_of_earlier_versions_name_forgotten_ids():
    state = EventRows.from_frame(pl.DataFrame({"_eid": ["a", "b"], "_n": [2, 1], "_last": [5, 9]}))
    state.apply(pl.DataFrame({"_eid": ["c", "a"], "_n": [1, None], "_last": [12, None], "_step": [0, 1]},
                             schema={"_eid": pl.String, "_n": pl.Int64, "_last": pl.Int64, "_step": pl.Int32}))
    assert state.items() == {"b": (1, 9), "c": (1, 12)}


def test_a_full_capture_is_the_state_when_taken():
    """Built later on another thread: what happens after the capture must not show in it."""
    state = EventRows()
    state.add(pl.DataFrame({"event_id": ["a", "b"], "_n": [1, 1], "_last": [5, 6]}))
    taken = state.capture()
    before = state.items()
    state.add(pl.DataFrame({"event_id": ["a", "c"], "_n": [2, 1], "_last": [9, 9]}))  # marks a's entry dead
    state.expire(6)
    assert {eid: (n, last) for eid, n, last in resolve(taken).iter_rows()} == before


def test_a_delta_capture_is_what_happened_until_taken():
    state = EventRows()
    state.frame()  # deltas follow a full frame
    state.add(pl.DataFrame({"event_id": ["a", "b"], "_n": [1, 1], "_last": [5, 6]}))
    state.expire(4)
    taken = state.capture(delta=True)
    state.add(pl.DataFrame({"event_id": ["c"], "_n": [1], "_last": [9]}))  # after: in the next delta
    assert resolve(taken).rows() == [("a", 1, 5, 0, None), ("b", 1, 6, 0, None), (None, None, None, 1, 4)]
    assert resolve(state.capture(delta=True))["_eid"].to_list() == ["c"]


@settings(max_examples=100, deadline=None)
@given(run=st.lists(st.integers(0, 2**64 - 1), max_size=300), extra=st.lists(st.integers(0, 2**64 - 1), max_size=50),
       dead=st.sets(st.integers(0, 299)))
def test_a_run_finds_its_live_hashes_through_its_bloom_filter(run, extra, dead):
    """Every hash of the run is let through by its filter and found (the first live entry,
    duplicates flagged); a hash not in the run is not found, filtered or not."""
    import numpy as np

    from assay import event_rows_kernels as k

    hashes = np.sort(np.array(run, np.uint64))
    last = np.array([-1 if i in dead else 5 for i in range(hashes.size)], np.int64)
    queries = np.unique(np.array(run + extra, np.uint64))
    pos, shared = k.find(hashes, last, queries, 0, k.bloom_of(hashes))
    for q, p, s in zip(queries.tolist(), pos.tolist(), shared.tolist(), strict=True):
        live = [i for i in range(hashes.size) if hashes[i] == q and last[i] >= 0]
        assert p == (live[0] if live else -1) and s == (len(live) > 1)
