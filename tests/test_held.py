"""Held pairs: per partition, which scenarios held at each key's last evaluation."""

from __future__ import annotations

import numpy as np
import polars as pl

from assay.held import Held
from assay.snapshots import resolve


def keys(*names: str) -> pl.Series:
    return pl.Series(list(names), dtype=pl.String)


def test_replace_then_pairs_per_key_and_partition() -> None:
    held = Held()
    held.replace(keys("a", "b", "c"), 0, np.array([0, 1, 2]), np.array([2, 0, 0]), np.array([5, 1, 3]))
    held.replace(keys("a", "z"), np.array([1, 1]), np.array([0, 1]), np.array([1]), np.array([7]))
    assert held.pairs_count == 4
    ptr, combos = held.pairs(keys("c", "x", "a"), 0)
    assert ptr.tolist() == [0, 1, 1, 3] and sorted(combos[1:].tolist()) == [1, 3] and combos[0] == 5
    ptr, combos = held.pairs(keys("a", "z", "a"), np.array([0, 1, 1]))
    assert ptr.tolist() == [0, 2, 3, 3] and combos[2] == 7
    # deciding a key anew drops what held before; keys not decided keep theirs
    held.replace(keys("a", "b"), 0, np.array([0]), np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert held.pairs_count == 2
    assert held.frame().rows() == [("c", 5, 0), ("z", 7, 1)]


def test_frame_and_load_round_trip_one_partition() -> None:
    held = Held()
    held.replace(keys("k1", "k2"), 3, np.array([0, 1]), np.array([0, 0, 1]), np.array([4, 2, 9]))
    held.replace(keys("other"), 5, np.array([0]), np.array([0]), np.array([1]))
    again = Held()
    again.load(held.frame(3), 3)
    again.load(held.frame(5), 5)
    assert again.frame().equals(held.frame())
    assert again.pairs_count == held.pairs_count == 4
    again.load(held.frame(3).clear(), 3)  # an empty snapshot empties the partition
    assert again.frame().rows() == [("other", 1, 5)]


def test_nothing_held_reads_no_keys() -> None:
    ptr, combos = Held().pairs(keys(*[str(i) for i in range(5)]), 0)
    assert ptr.tolist() == [0] * 6 and combos.size == 0


def test_a_capture_is_the_partition_when_taken() -> None:
    """Built later on another thread: what micro-batches change after it must not show."""
    held = Held()
    held.replace(keys("a", "b"), 2, np.array([0, 1]), np.array([0, 1]), np.array([4, 6]))
    held.replace(keys("elsewhere"), 3, np.array([0]), np.array([0]), np.array([1]))
    taken = held.capture(2)
    before = held.frame(2)
    held.replace(keys("a", "c"), 2, np.array([0, 1]), np.array([1]), np.array([8]))
    assert resolve(taken).equals(before) and before.rows() == [("a", 4, 2), ("b", 6, 2)]
    assert resolve(held.capture(2)).rows() == [("b", 6, 2), ("c", 8, 2)]
