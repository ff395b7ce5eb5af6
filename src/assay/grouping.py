"""Grouping a large column's rows by dense code on two threads.

Each thread counts the codes of its part of the rows; every (code, part) then has its slice
of the output (part 0's rows of a code before part 1's, so the sort stays stable), and each
thread places its part's rows into their slices. The kernels release the GIL. Small inputs
take ``sort_by_code``, the same two passes over every row on the calling thread.

One counting pass and one placing pass replaced a two-pass LSD radix sort on 11-bit digits
(four passes over the rows, three buffers of the rows' size): 10 M rows, 900 k codes,
0.21-0.32 s -> 0.13 s, and 80 MB less memory to touch (measured with ``bench/bench_core.py``'s
events; the placing writes land in a million places, which this machine's caches absorb
better than a second pass).

With many codes (``BUCKETED_CODES``) and under 2**24 rows, the rows are first placed by bucket
of 256 codes (a few thousand places to write to, which stay in the cache), each as its row
number and its code's low bits in one 32-bit word of the output's own memory, and each bucket
is then sorted by those bits in a buffer that stays in the cache, back into its own slice
(``sort_buckets``): the same order, with no write to a million places. 10 M rows, 900 k
codes: 0.105-0.153 s -> 0.047-0.075 s.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def code_counts(codes: np.ndarray, start: int, stop: int, n_codes: int) -> np.ndarray:
    counts = np.zeros(n_codes, np.int64)
    for i in range(start, stop):
        counts[codes[i]] += 1
    return counts


@njit(cache=True, nogil=True)
def place(codes: np.ndarray, start: int, stop: int, slots: np.ndarray, order: np.ndarray) -> None:
    """Rows start..stop at their code's next slot (``slots``: this part's first slot per code)."""
    for i in range(start, stop):
        c = codes[i]
        order[slots[c]] = i
        slots[c] += 1


@njit(cache=True, nogil=True)
def sort_by_code(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of rows by dense code on the calling thread: (order as int64, group_start)."""
    n = codes.shape[0]
    group_start = np.zeros(n_codes + 1, np.int64)
    group_start[1:] = code_counts(codes, 0, n, n_codes)
    for k in range(n_codes):
        group_start[k + 1] += group_start[k]
    order = np.empty(n, np.int64)
    place(codes, 0, n, group_start[:-1].copy(), order)
    return order, group_start


# the bucketed sort: codes per bucket (the low bits kept with the row), and rows a word holds
LOW_BITS = 8
ROW_BITS = 24
BUCKETED_CODES = 1 << 16  # from this many codes on (fewer: the counts stay in the cache anyway)
MAX_BUCKET_ROWS = 1 << 21  # a bucket's sorting buffer (8 MB at most; else the plain sort)


@njit(cache=True, nogil=True)
def bucket_counts(codes: np.ndarray, start: int, stop: int, n_buckets: int) -> np.ndarray:
    counts = np.zeros(n_buckets, np.int64)
    for i in range(start, stop):
        counts[codes[i] >> LOW_BITS] += 1
    return counts


@njit(cache=True, nogil=True)
def place_in_buckets(codes: np.ndarray, start: int, stop: int, slots: np.ndarray, out: np.ndarray) -> None:
    """Rows start..stop at their bucket's next slot, as (low bits of the code, row) words."""
    low = (1 << LOW_BITS) - 1
    for i in range(start, stop):
        c = codes[i]
        b = c >> LOW_BITS
        out[slots[b]] = np.uint32(((c & low) << ROW_BITS) | i)
        slots[b] += 1


@njit(cache=True, nogil=True)
def sort_buckets(first: int, last: int, bucket_start: np.ndarray, n_codes: int, words: np.ndarray,
                 order: np.ndarray, group_start: np.ndarray, buffer: np.ndarray) -> None:
    """Buckets first..last-1 sorted by code into their own slices (``order`` is ``words``'
    memory: each bucket is copied to ``buffer`` first), and their codes' group starts."""
    rows = (1 << ROW_BITS) - 1
    width = 1 << LOW_BITS
    counts = np.zeros(width + 1, np.int64)
    for b in range(first, last):
        s = bucket_start[b]
        n = bucket_start[b + 1] - s
        for k in range(n):
            buffer[k] = words[s + k]
        counts[:] = 0
        for k in range(n):
            counts[(buffer[k] >> ROW_BITS) + 1] += 1
        for j in range(width):
            counts[j + 1] += counts[j]
        base = b << LOW_BITS
        for j in range(min(width, n_codes - base)):
            group_start[base + j] = s + counts[j]
        for k in range(n):
            w = buffer[k]
            j = w >> ROW_BITS
            order[s + counts[j]] = w & rows
            counts[j] += 1


def order_dtype(n: int) -> type:
    # 32-bit positions when they fit: half the memory to touch and to write
    return np.int32 if n < 2**31 else np.int64


def scratch(n: int) -> list[np.ndarray]:
    """The buffer ``group_by_code`` writes for ``n`` rows, written once so that its pages are
    mapped: memory a process touches for the first time costs 1-3 ms per MB here, and a
    thread that would otherwise idle can pay it before the sort (which then only overwrites it)."""
    order = np.empty(n, order_dtype(n))
    order.fill(0)
    return [order]


def group_by_code(codes: np.ndarray, n_codes: int, parts: int = 2, wide: bool = True,
                  buffers: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of rows by dense code: (order, group_start), one group per code. ``wide``:
    the order as int64 even when int32 holds it (the kernels that read it take int64).
    ``buffers``: what ``scratch(n)`` gave, to write into instead of a new array."""
    n = codes.shape[0]
    dtype = order_dtype(n)
    spare = [b for b in buffers or [] if b.dtype == dtype and b.shape[0] == n]
    order = spare[0] if spare else np.empty(n, dtype)
    bounds = [n * k // parts for k in range(parts + 1)]
    starts, stops = bounds[:-1], bounds[1:]
    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="assay-group") as pool:
        if n_codes >= BUCKETED_CODES and n < 1 << ROW_BITS and dtype == np.int32:
            group_start = _bucketed(pool, codes, n_codes, order, bounds)
            if group_start is not None:
                return (order.astype(np.int64, copy=False) if wide else order), group_start
        counts = list(pool.map(code_counts, [codes] * parts, starts, stops, [n_codes] * parts))
        group_start, slots = _starts_and_slots(counts)
        list(pool.map(place, [codes] * parts, starts, stops, slots, [order] * parts))
    return (order.astype(np.int64, copy=False) if wide else order), group_start


def _bucketed(pool: ThreadPoolExecutor, codes: np.ndarray, n_codes: int, order: np.ndarray,
              bounds: list[int]) -> np.ndarray | None:
    """``group_by_code``'s sort by buckets of codes (module docstring) into ``order``; its
    group starts, or None when a bucket holds too many rows (nothing is written then)."""
    parts = len(bounds) - 1
    n = bounds[-1]
    n_buckets = (n_codes + (1 << LOW_BITS) - 1) >> LOW_BITS
    counts = list(pool.map(bucket_counts, [codes] * parts, bounds[:-1], bounds[1:], [n_buckets] * parts))
    largest = int(np.sum(counts, axis=0).max(initial=0))
    if largest > MAX_BUCKET_ROWS:
        return None
    bucket_start, slots = _starts_and_slots(counts)
    words = order.view(np.uint32)
    list(pool.map(place_in_buckets, [codes] * parts, bounds[:-1], bounds[1:], slots, [words] * parts))
    group_start = np.empty(n_codes + 1, np.int64)
    group_start[n_codes] = n
    # parts of about equal rows, each a run of whole buckets
    cuts = np.searchsorted(bucket_start, [n * k // parts for k in range(parts + 1)])
    cuts[0], cuts[-1] = 0, n_buckets
    buffers = [np.empty(max(largest, 1), np.uint32) for _ in range(parts)]
    list(pool.map(sort_buckets, cuts[:-1].tolist(), cuts[1:].tolist(), [bucket_start] * parts,
                  [n_codes] * parts, [words] * parts, [order] * parts, [group_start] * parts, buffers))
    return group_start


def _starts_and_slots(counts: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """From each part's counts per code (or bucket): where each code's rows start, and each
    part's first slot per code (part 0's rows of a code before part 1's: the sort is stable)."""
    starts = np.zeros(counts[0].shape[0] + 1, np.int64)
    np.cumsum(np.sum(counts, axis=0), out=starts[1:])
    slots = []
    first = starts[:-1].copy()
    for part_counts in counts:
        slots.append(first.copy())
        first += part_counts
    return starts, slots
