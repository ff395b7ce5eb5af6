"""Where each key's retained rows are, so that a micro-batch reads only its own keys' rows.

A stream's detector keeps the relevant rows still inside a window (``retained``: rows at
absolute positions ``cut``..``appended``, appended at the end, cut at the front). A
micro-batch needs the rows of the keys it touches; finding them by scanning every
retained row would make each micro-batch cost what the whole state costs. ``KeyIndex``
links each key's rows instead (by a 64-bit hash of the key), so a lookup costs the rows
it returns. A hash collision only brings another key's rows along: callers compare keys.

The index is derived state: never checkpointed, built from the retained rows after a
restore. When its arrays fill up (after about one state's worth of rows, so O(1) per row
over time) it grows from what it holds: the links of the rows still retained move to a new
array, the keys with rows left to a new table (by their stored hashes). Rebuilding it from
the rows instead hashed a million keys at once: a 0.12-0.16 s pause of the stream. An index
not looked up since it last grew is dropped instead, and built again when next needed.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .lazy import LazyModule

index_kernels = LazyModule("assay.key_index_kernels")
HASH_SEED = 0x5EED


def key_hashes(keys: pl.Series) -> np.ndarray:
    return keys.hash(seed=HASH_SEED).to_numpy()


# the smallest arrays (the tests make them tiny, so that they grow)
MIN_ROWS = 4096
MIN_SLOTS = 1024


def _power_of_two(n: int) -> int:
    return max(MIN_SLOTS, 1 << int(n - 1).bit_length())


def _table(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An empty table: (hash, first position, last position) per slot."""
    return np.zeros(size, np.uint64), np.full(size, index_kernels.EMPTY, np.int64), np.zeros(size, np.int64)


def _as_hashes(hashes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(hashes, dtype=np.uint64)


class KeyIndex:
    def __init__(self, hashes: np.ndarray, start: int, distinct: int):
        """Rows at positions ``start``.. with these key hashes; ``distinct`` keys among them."""
        self.base = start
        # a table for the distinct keys (a quarter full at most), not for one key per row:
        # ``append``'s bound assumes every new row may be a new key
        self.keys, self.head, self.tail = _table(_power_of_two(4 * (distinct + MIN_SLOTS)))
        self.nxt = np.empty(max(MIN_ROWS, 2 * hashes.size), np.int64)
        self.used = index_kernels.index_append(self.keys, self.head, self.tail, self.nxt, start, start,
                                               _as_hashes(hashes), start)
        self.end = start + hashes.size
        self.lookups = 0  # since the arrays last grew

    @classmethod
    def of(cls, keys: pl.Series, start: int) -> KeyIndex:
        # an estimate sizes the table well enough (it grows when full): the exact count took
        # half of building an index over a million rows
        return cls(key_hashes(keys), start, keys.approx_n_unique())

    def append(self, hashes: np.ndarray, start: int, cut: int) -> bool:
        """Link rows at positions ``start``..; the arrays grow as needed if the index was
        looked up since they last grew, else False (nothing changed): an index nobody reads
        (micro-batches large enough to scan) is dropped rather than kept up."""
        if start != self.end:
            raise AssertionError("rows are appended in position order")
        full_rows = start + hashes.size - self.base > self.nxt.size
        full_keys = (self.used + hashes.size) * 2 > self.keys.size
        if (full_rows or full_keys) and not self.lookups:
            return False
        if full_rows:
            self._compact(cut, hashes.size)
        if full_keys:
            self._rehash(cut, hashes.size)
        if full_rows or full_keys:
            self.lookups = 0
        self.used += index_kernels.index_append(self.keys, self.head, self.tail, self.nxt, self.base, cut,
                                                _as_hashes(hashes), start)
        self.end = start + hashes.size
        return True

    def _compact(self, cut: int, incoming: int) -> None:
        """The links from ``cut`` on, moved to the start of a new array with room to grow: no
        key is hashed again (rebuilding from the rows hashed a million keys at once and paused
        the stream for a tenth of a second)."""
        index_kernels.index_advance(self.head, self.tail, self.nxt, self.base, cut)
        live = self.end - cut
        nxt = np.empty(max(MIN_ROWS, 2 * (live + incoming)), np.int64)
        nxt[:live] = self.nxt[cut - self.base:self.end - self.base]
        self.nxt, self.base = nxt, cut

    def _rehash(self, cut: int, incoming: int) -> None:
        """A new table of the keys with rows left (their hashes are in the old one)."""
        live = index_kernels.index_advance(self.head, self.tail, self.nxt, self.base, cut)
        keys, head, tail = _table(_power_of_two(4 * (live + incoming + MIN_SLOTS)))
        self.used = index_kernels.index_rehash(self.keys, self.head, self.tail, keys, head, tail)
        self.keys, self.head, self.tail = keys, head, tail

    def lookup(self, hashes: np.ndarray, cut: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions (at or above ``cut``) of the rows whose key has one of these hashes, and
        for each the number of a query (into ``hashes``) with its hash: comparing the row's
        key with that query's tells a collision apart without a hash table of keys."""
        self.lookups += 1
        queries, first = np.unique(_as_hashes(hashes), return_index=True)
        positions, which = index_kernels.index_lookup(self.keys, self.head, self.tail, self.nxt, self.base, cut,
                                                      queries)
        return positions, first[which]
