"""A partition's retained rows, and how a micro-batch's rows are told apart by partition."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from assay import retained
from assay.retained import LANE_SHIFT, SEGMENT_ROWS, Retained, lane_base, lanes_of


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1000)), max_size=60))
def test_lanes_of_gives_each_partitions_rows_as_one_run_in_their_order(rows):
    seq = np.array([lane_base(lane) + n for lane, n in rows], np.int64)
    runs, order = lanes_of(seq)
    arranged = seq if order is None else seq[order]
    if seq.size == 0:
        assert runs == [(0, 0, 0)]
        return
    assert [r[0] for r in runs] == sorted({lane for lane, _ in rows})
    assert runs[0][1] == 0 and runs[-1][2] == seq.size
    for (lane, start, stop), nxt in zip(runs, [*runs[1:], None], strict=True):
        part = arranged[start:stop]
        assert (part >> LANE_SHIFT == lane).all()
        # within a partition, the rows keep the order they came in
        assert part.tolist() == [s for s in seq.tolist() if s >> LANE_SHIFT == lane]
        if nxt is not None:
            assert stop == nxt[1]


def frame(ts: list[int], key: str = "k") -> pl.DataFrame:
    return pl.DataFrame({"_key": [key] * len(ts), "_ts": ts, "_eid": [f"e{t}" for t in ts],
                         "_seq": list(range(len(ts))), "_val": [0.0] * len(ts)},
                        schema={"_key": pl.String, "_ts": pl.Int64, "_eid": pl.String, "_seq": pl.Int64,
                                "_val": pl.Float64})


def test_expiry_cuts_a_prefix_and_deltas_carry_what_was_appended_since():
    kept = Retained(frame([]))
    kept.append(frame([1, 2, 3]), None)
    full_positions, full_rows = kept.capture(delta=False)
    kept.append(frame([4, 5]), None)
    kept.expire(3)  # rows before ts 3 leave
    assert kept.rows["_ts"].to_list() == [3, 4, 5] and kept.cut == 2
    positions, rows = kept.capture(delta=True)
    assert positions == {"start": 3, "cut": 2, "appended": 5} and rows["_ts"].to_list() == [4, 5]
    again = Retained(frame([]))
    again.restore(False, 0, full_positions["cut"], full_rows)
    again.restore(True, positions["start"], positions["cut"], rows)
    assert again.rows.equals(kept.rows) and again.first_ts == 3
    again.expire(10)
    assert again.rows.height == 0 and again.first_ts is None and again.cut == 5


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30)), max_size=40),
       st.lists(st.integers(0, 10**6), max_size=30), st.sampled_from([SEGMENT_ROWS, 16, 50]))
def test_gathers_equal_plain_positions_whatever_the_chunks(steps, picks, segment_rows):
    """Appends (``size`` rows) and cuts (``advance`` in ts); a gather of positions gives the
    rows of a plain list, segment by segment (each one chunk), in the order asked within each."""
    retained.SEGMENT_ROWS, cap = segment_rows, retained.SEGMENT_ROWS
    try:
        kept = Retained(frame([]))
        plain: list[int] = []  # ts of every retained row, by position relative to the cut
        ts = 0
        for size, advance in steps:
            kept.append(frame(list(range(ts, ts + size))), None)
            plain += list(range(ts, ts + size))
            ts += size
            cutoff = plain[0] + advance if plain else 0
            kept.expire(cutoff)
            plain = [t for t in plain if t >= cutoff]
            assert kept.rows["_ts"].to_list() == plain and kept.height == len(plain)
            assert kept.first_ts == (plain[0] if plain else None)  # when the next cut is due
            assert all(s.n_chunks() == 1 and s.height for s in kept.segments)
            if plain:
                # a key's positions come in order, keys' interleaved: ascending, then descending
                positions = np.array(sorted({p % len(plain) for p in picks}), np.int64)
                positions = np.concatenate([positions[::2], positions[1::2][::-1]])
                rows, which = kept.gather(positions, positions * 10)
                ends = np.cumsum([s.height for s in (*kept.segments, kept.tail)])
                part = np.searchsorted(ends, positions, side="right")
                expected = positions[np.argsort(part, kind="stable")]
                assert rows["_ts"].to_list() == [plain[p] for p in expected]
                assert which.tolist() == [p * 10 for p in expected]
    finally:
        retained.SEGMENT_ROWS = cap
