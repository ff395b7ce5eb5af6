"""Numba kernels of ``KeyIndex``: an open-addressing table from a key's 64-bit hash to the
first and last position of its rows, and a next-position array linking each key's rows.

Positions are absolute (``appended`` counts every row ever retained); the arrays start at
``base``, the cut at the last rebuild, so every position met is at or above ``base``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY = -2  # a slot never used; -1: a key whose rows all left


@njit(cache=True, nogil=True)
def index_append(keys: np.ndarray, head: np.ndarray, tail: np.ndarray, nxt: np.ndarray, base: int,
                 cut: int, hashes: np.ndarray, start: int) -> int:
    """Link rows at positions start, start+1, ... (hashes in row order); returns new slots used."""
    mask = np.uint64(keys.size - 1)
    one = np.uint64(1)
    used = 0
    for i in range(hashes.size):
        h = hashes[i]
        pos = start + i
        nxt[pos - base] = -1
        s = h & mask
        while True:
            if head[s] == EMPTY:
                keys[s] = h
                head[s] = pos
                tail[s] = pos
                used += 1
                break
            if keys[s] == h:
                if head[s] < 0 or tail[s] < cut:  # its rows all left: the list starts again
                    head[s] = pos
                else:
                    nxt[tail[s] - base] = pos
                tail[s] = pos
                break
            s = (s + one) & mask
    return used


@njit(cache=True, nogil=True)
def index_lookup(keys: np.ndarray, head: np.ndarray, tail: np.ndarray, nxt: np.ndarray, base: int,
                 cut: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions at or above ``cut`` of the rows of each (distinct) queried hash, each key's in
    order, and for each position the number of the query it answers."""
    mask = np.uint64(keys.size - 1)
    one = np.uint64(1)
    slots = np.full(queries.size, -1, np.int64)
    total = 0
    for q in range(queries.size):
        h = queries[q]
        s = h & mask
        while head[s] != EMPTY:
            if keys[s] == h:
                if head[s] >= 0 and tail[s] >= cut:
                    p = head[s]
                    while p < cut:  # rows that left since: the head moves on for good
                        p = nxt[p - base]
                    head[s] = p
                    slots[q] = np.int64(s)
                    while p != -1:
                        total += 1
                        p = nxt[p - base]
                else:
                    head[s] = -1
                break
            s = (s + one) & mask
    out = np.empty(total, np.int64)
    which = np.empty(total, np.int64)
    k = 0
    for q in range(queries.size):
        s = slots[q]
        if s < 0:
            continue
        p = head[s]
        while p != -1:
            out[k] = p
            which[k] = q
            k += 1
            p = nxt[p - base]
    return out, which


@njit(cache=True, nogil=True)
def index_advance(head: np.ndarray, tail: np.ndarray, nxt: np.ndarray, base: int, cut: int) -> int:
    """Move every key's head to its first row at or above ``cut`` (-1 when none is left), so
    that nothing reads links below ``cut``; returns the keys with rows left."""
    live = 0
    for s in range(head.size):
        if head[s] < 0:  # never used (EMPTY), or its rows all left
            continue
        if tail[s] < cut:
            head[s] = -1
            continue
        p = head[s]
        while p < cut:
            p = nxt[p - base]
        head[s] = p
        live += 1
    return live


@njit(cache=True, nogil=True)
def index_rehash(keys: np.ndarray, head: np.ndarray, tail: np.ndarray, new_keys: np.ndarray,
                 new_head: np.ndarray, new_tail: np.ndarray) -> int:
    """Insert the keys with rows left (``head`` >= 0, after ``index_advance``) into an empty
    table; returns the slots used."""
    mask = np.uint64(new_keys.size - 1)
    one = np.uint64(1)
    used = 0
    for s in range(keys.size):
        if head[s] < 0:
            continue
        h = keys[s]
        t = h & mask
        while new_head[t] != EMPTY:
            t = (t + one) & mask
        new_keys[t] = h
        new_head[t] = head[s]
        new_tail[t] = tail[s]
        used += 1
    return used


def warm_up() -> None:
    one = np.zeros(1, np.uint64)
    head = np.full(2, EMPTY, np.int64)
    tail = np.zeros(2, np.int64)
    nxt = np.zeros(2, np.int64)
    keys = np.zeros(2, np.uint64)
    index_append(keys, head, tail, nxt, 0, 0, one, 0)
    index_lookup(keys, head, tail, nxt, 0, 0, one)
    index_advance(head, tail, nxt, 0, 0)
    index_rehash(keys, head, tail, keys.copy(), np.full(2, EMPTY, np.int64), tail.copy())
