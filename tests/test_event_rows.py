"""EventRows (rows per event_id in a stream) against a plain dict rebuilt at every step."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.event_rows import EventRows


def batch_frame(rows: list[tuple[str, int]]) -> pl.DataFrame:
    frame = pl.DataFrame({"event_id": [r[0] for r in rows], "ts": [r[1] for r in rows]},
                         schema={"event_id": pl.String, "ts": pl.Int64})
    return frame.group_by("event_id").agg(pl.len().cast(pl.Int64).alias("_n"), pl.col("ts").max().alias("_last"))


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 5)), max_size=6),
                                st.integers(0, 8), st.sampled_from(["", "full", "delta", "restart"])),
                      max_size=12),
       horizon=st.integers(0, 12))
def test_counts_and_expiry_equal_a_plain_model(steps, horizon):
    """Also through checkpoints: a full frame, delta frames on top, and a restart from them."""
    state, model = EventRows(), {}
    stored: list[pl.DataFrame] = []
    now = 0
    for rows, advance, checkpoint in steps:
        # micro-batches in canonical order: each one's rows lie above the previous watermark
        placed = [(eid, now + dt) for eid, dt in rows]
        for eid, ts in placed:
            n, last = model.get(eid, (0, ts))
            model[eid] = (n + 1, max(last, ts))
        state.add(batch_frame(placed))
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


def test_the_ids_are_out_of_the_cycle_collectors_way():
    """A stream's millions of ids must not be walked by every full collection (a pause)."""
    import gc

    state = EventRows()
    state.capture()
    for start in range(0, 3000, 1000):
        state.add(pl.DataFrame({"event_id": [f"e{i}" for i in range(start, start + 1000)],
                                "_n": [1] * 1000, "_last": list(range(start, start + 1000))}))
    state.add(pl.DataFrame({"event_id": ["e5"], "_n": [2], "_last": [5000]}))  # an id seen before
    state.expire(1500)
    gc.collect()
    assert not gc.is_tracked(state.rows)
    assert state.items()["e5"] == (3, 5000) and "e1000" not in state.items() and "e2000" in state.items()
