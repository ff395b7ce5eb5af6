"""Numba kernels over Arrow string views: exact codes for strings in one pass.

An Arrow string view is 16 bytes: the length, then either the whole string (up to 12
bytes, inline) or its first 4 bytes, a buffer index and an offset. A table slot keeps an
inline string's two words themselves, so that equal words are equal strings and no second
pass has to check the codes (hashing 64-bit digests needs one: two strings may share one).
A longer string's bytes are copied once into the table's arena and compared byte by byte.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .prefetch import prefetch

INLINE = 12
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _mix(a, b):
    h = (a * np.uint64(0x9E3779B97F4A7C15)) ^ (b + np.uint64(0x632BE59BD9B4E019))
    h ^= h >> np.uint64(32)
    h *= np.uint64(0xC2B2AE3D27D4EB4F)
    h ^= h >> np.uint64(29)
    return h


@njit(cache=True, nogil=True, inline="always")
def _inline_words(w0, w1):
    """The view's words with the bytes past the string cleared (the format asks writers to
    zero them; the codes must not depend on it)."""
    length = w0 & _LOW32
    if length < 4:
        w0 &= (np.uint64(1) << (np.uint64(32) + np.uint64(8) * length)) - np.uint64(1)
        w1 = np.uint64(0)
    elif length == 4:
        w1 = np.uint64(0)
    elif length < 12:
        w1 &= (np.uint64(1) << (np.uint64(8) * (length - np.uint64(4)))) - np.uint64(1)
    return w0, w1


@njit(cache=True, nogil=True, inline="always")
def _bytes_hash(data, pos, length):
    h = np.uint64(length)
    word = np.uint64(0)
    k = 0
    for j in range(length):
        word |= np.uint64(data[pos + j]) << np.uint64(8 * k)
        k += 1
        if k == 8:
            h = _mix(h, word)
            word = np.uint64(0)
            k = 0
    return _mix(h, word)


@njit(cache=True, nogil=True, inline="always")
def _same_bytes(a, pa, b, pb, length):
    for j in range(length):
        if a[pa + j] != b[pb + j]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _key(words, data, bases, i):
    """A row's view words as the table keeps them, their hash and (a long string) the start
    of its bytes in ``data``."""
    w0 = words[i, 0]
    w1 = words[i, 1]
    length = w0 & _LOW32
    if length <= INLINE:
        w0, w1 = _inline_words(w0, w1)
        return w0, w1, _mix(w0, w1), np.int64(0)
    pos = bases[np.int64(w1 & _LOW32)] + np.int64(w1 >> np.uint64(32))
    return w0, w1, _bytes_hash(data, pos, np.int64(length)), pos


@njit(cache=True, nogil=True, inline="always")
def _probe(slots, arena, data, w0, w1, h, pos, mask):
    """The slot of a row's string (view words ``w0``, ``w1``, hash ``h``; a long string's
    bytes at ``data[pos:]``) and its code + 1 there, or the empty slot it would take and 0."""
    length = np.int64(w0 & _LOW32)
    s = np.int64(h) & mask
    while True:
        c = slots[3 * s + 2]
        if c == 0:
            return s, c
        if slots[3 * s] == w0:
            if length <= INLINE:
                if slots[3 * s + 1] == w1:
                    return s, c
            elif _same_bytes(arena, np.int64(slots[3 * s + 1]), data, pos, length):
                return s, c
        s = (s + 1) & mask


@njit(cache=True, nogil=True)
def encode(words, valid, data, bases, first, slots, count, arena, arena_used, insert, codes):
    """Codes of rows ``first``.. of one chunk of views into ``codes`` (-1: no value, or not
    in the table when ``insert`` is False); new strings get codes from ``count`` on.

    ``slots``: 3 words a slot: the view's first word, its second (an inline string) or
    the arena offset of its bytes (a longer one), and code + 1 (0: empty).
    Returns (next row, count, arena used): the next row is the chunk's length when every row
    is coded, else the table or the arena is full and the caller grows it and goes on there.
    """
    n = words.shape[0]
    mask = np.int64(slots.shape[0] // 3 - 1)
    limit = (mask + 1) - (mask + 1) // 4
    for i in range(first, n):
        if not valid[i]:
            codes[i] = -1
            continue
        w0, w1, h, pos = _key(words, data, bases, i)
        length = np.int64(w0 & _LOW32)
        s, c = _probe(slots, arena, data, w0, w1, h, pos, mask)
        if c != 0:
            codes[i] = np.int64(c) - 1
            continue
        if not insert:
            codes[i] = -1
            continue
        if count >= limit:
            return i, count, arena_used
        if length > INLINE:
            if arena_used + length > arena.shape[0]:
                return i, count, arena_used
            for k in range(length):
                arena[arena_used + k] = data[pos + k]
            w1 = np.uint64(arena_used)
            arena_used += length
        slots[3 * s] = w0
        slots[3 * s + 1] = w1
        slots[3 * s + 2] = np.uint64(count + 1)
        codes[i] = count
        count += 1
    return n, count, arena_used


@njit(cache=True, nogil=True, inline="always")
def _bloom_word(h, n_words):
    """The filter word and the three bits of a hash (bits the table's slot does not use)."""
    w = np.int64(h >> np.uint64(40)) & (n_words - 1)
    bits = ((np.uint64(1) << (h & np.uint64(63))) | (np.uint64(1) << ((h >> np.uint64(6)) & np.uint64(63)))
            | (np.uint64(1) << ((h >> np.uint64(12)) & np.uint64(63))))
    return w, bits


@njit(cache=True, nogil=True)
def bloom_of(slots, arena, n_words):
    """A blocked Bloom filter of a table's strings: three bits in one 64-bit word per string."""
    bloom = np.zeros(n_words, np.uint64)
    for s in range(slots.shape[0] // 3):
        if slots[3 * s + 2] == 0:
            continue
        w0 = slots[3 * s]
        length = w0 & _LOW32
        h = _mix(w0, slots[3 * s + 1]) if length <= INLINE else _bytes_hash(arena, np.int64(slots[3 * s + 1]),
                                                                             np.int64(length))
        w, bits = _bloom_word(h, n_words)
        bloom[w] |= bits
    return bloom


@njit(cache=True, nogil=True)
def member_rows(words, valid, data, bases, short, slots, arena, bloom, first_row, out):
    """Rows of one chunk whose string is in the table, as ``first_row`` + position, into
    ``out``; returns how many. A row passes the Bloom filter (one word, in cache) before
    its slot is looked for: most rows of a column are in no small table. ``short``: every
    string of the chunk is inline (a loop without the long strings' branch runs 8x faster)."""
    mask = np.int64(slots.shape[0] // 3 - 1)
    n_words = bloom.shape[0]
    k = 0
    if short:
        for i in range(words.shape[0]):
            w0, w1 = _inline_words(words[i, 0], words[i, 1])
            h = _mix(w0, w1)
            w, bits = _bloom_word(h, n_words)
            if valid[i] and bloom[w] & bits == bits and _probe(slots, arena, data, w0, w1, h, 0, mask)[1] != 0:
                out[k] = first_row + i
                k += 1
        return k
    for i in range(words.shape[0]):
        if not valid[i]:
            continue
        w0, w1, h, pos = _key(words, data, bases, i)
        w, bits = _bloom_word(h, n_words)
        if bloom[w] & bits == bits and _probe(slots, arena, data, w0, w1, h, pos, mask)[1] != 0:
            out[k] = first_row + i
            k += 1
    return k


@njit(cache=True, nogil=True)
def table_views(slots, count, codes):
    """Arrow string views of the strings of ``codes`` (each a code of the table): an inline
    string as the table keeps it, a longer one pointing at its bytes in the arena (buffer 0)."""
    where = np.empty(max(count, 1), np.int32)  # a table of 2**31 slots would be 48 GB
    for s in range(slots.shape[0] // 3):
        c = slots[3 * s + 2]
        if c != 0:
            where[np.int64(c) - 1] = s
    views = np.empty((codes.shape[0], 2), np.uint64)
    for i in range(codes.shape[0]):
        s = np.int64(where[codes[i]])
        w0 = slots[3 * s]
        views[i, 0] = w0
        w1 = slots[3 * s + 1]
        views[i, 1] = w1 if (w0 & _LOW32) <= INLINE else w1 << np.uint64(32)
    return views


# rows looked ahead: each row's slot is asked for this many rows before it is probed
AHEAD = 16
# a table of up to this many slots (768 kB) is read without asking ahead
CACHED_SLOTS = 1 << 15


@njit(cache=True, nogil=True)
def encode_short(words, valid, first, slots, count, insert, codes):
    """``encode`` for a chunk whose strings are all inline (the common case of ids and codes):
    no bytes to read or compare, and a tighter loop (10 M rows, 900 k keys: 0.16 s)."""
    n = words.shape[0]
    cap = slots.shape[0] // 3
    mask = np.int64(cap - 1)
    limit = cap - cap // 4
    # a table that stays in the cache (a pack's items) gains nothing from asking ahead
    ahead = AHEAD if cap > CACHED_SLOTS else n
    for i in range(first, n):
        j = i + ahead
        if j < n:
            a0, a1 = _inline_words(words[j, 0], words[j, 1])
            prefetch(slots, 3 * (np.int64(_mix(a0, a1)) & mask))
        if not valid[i]:
            codes[i] = -1
            continue
        w0, w1 = _inline_words(words[i, 0], words[i, 1])
        s = np.int64(_mix(w0, w1)) & mask
        while True:
            c = slots[3 * s + 2]
            if c == 0 or (slots[3 * s] == w0 and slots[3 * s + 1] == w1):
                break
            s = (s + 1) & mask
        if c != 0:
            codes[i] = np.int64(c) - 1
        elif not insert:
            codes[i] = -1
        elif count >= limit:
            return i, count
        else:
            slots[3 * s] = w0
            slots[3 * s + 1] = w1
            slots[3 * s + 2] = np.uint64(count + 1)
            codes[i] = count
            count += 1
    return n, count


@njit(cache=True, nogil=True)
def rehash(slots, arena, capacity):
    """The table's entries in a table of ``capacity`` slots."""
    out = np.zeros(capacity * 3, np.uint64)
    mask = np.int64(capacity - 1)
    for s in range(slots.shape[0] // 3):
        if slots[3 * s + 2] == 0:
            continue
        w0 = slots[3 * s]
        w1 = slots[3 * s + 1]
        length = w0 & _LOW32
        if length <= INLINE:
            t = np.int64(_mix(w0, w1)) & mask
        else:
            t = np.int64(_bytes_hash(arena, np.int64(w1), np.int64(length))) & mask
        while out[3 * t + 2] != 0:
            t = (t + 1) & mask
        out[3 * t] = w0
        out[3 * t + 1] = w1
        out[3 * t + 2] = slots[3 * s + 2]
    return out


def warm_up(codes_only: bool = False) -> None:
    """Load (or compile) the kernels on tiny inputs: see ``kernels.warm_up``. ``codes_only``:
    the coding kernels alone (a batch reading Parquet pages needs them first)."""
    words = np.zeros((1, 2), np.uint64)
    words.setflags(write=False)  # views exported from Arrow are read-only
    slots = np.zeros(16 * 3, np.uint64)
    codes = np.zeros(1, np.int32)
    # ``encode`` (strings longer than 12 bytes) loads when first needed
    encode_short(words, np.ones(1, np.bool_), 0, slots, 0, True, codes)
    rehash(slots, np.zeros(0, np.uint8), 32)
    if codes_only:
        return
    table_views(slots, 0, np.zeros(0, np.int64))  # a batch's alert keys as text
    # the rows of a batch holding a trigger's event_id (alert positions)
    arena = np.zeros(1, np.uint8)
    data = np.zeros(1, np.uint8)
    data.setflags(write=False)
    member_rows(words, np.ones(1, np.bool_), data, np.zeros(1, np.int64), True, slots, arena,
                bloom_of(slots, arena, 1), 0, np.zeros(1, np.int64))
