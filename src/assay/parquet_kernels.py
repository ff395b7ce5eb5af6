"""Numba kernels decoding Parquet pages: the RLE / bit-packed hybrid, PLAIN byte arrays.

The formats are those of the Parquet specification (Encodings.md): a hybrid run is a
ULEB128 header whose low bit tells a bit-packed run (header >> 1 groups of eight values,
least significant bits first) from a repeated one (header >> 1 copies of one value in
ceil(width / 8) little-endian bytes); a PLAIN byte array is a 4-byte little-endian length
and the bytes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INLINE = 12  # a string of up to 12 bytes lives inside its 16-byte Arrow view
BAD = -1  # returned for a page that does not hold what its header says (a corrupt file)


@njit(cache=True, nogil=True, inline="always")
def _uleb(buf, pos, end):
    value = np.int64(0)
    shift = 0
    while pos < end:
        b = np.int64(buf[pos])
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    return np.int64(-1), pos


@njit(cache=True, nogil=True)
def hybrid_lookup(buf, pos, end, width, n, lut, out):
    """``n`` hybrid values of ``width`` bits from ``buf[pos:end]``, each written to ``out``
    as ``lut[value]`` (the dictionary entry's code or value). Returns the position after
    them, or BAD when the data ends early or a value is past the dictionary's end."""
    mask = (np.int64(1) << width) - 1
    vbytes = (width + 7) // 8
    size = lut.shape[0]
    i = 0
    while i < n:
        header, pos = _uleb(buf, pos, end)
        if header < 0:
            return BAD
        if header & 1:
            count = (header >> 1) * 8
            stop = pos + (count * width + 7) // 8
            if stop > end:
                return BAD
            # a window of up to 64 bits, refilled 32 at a time (width <= 32): the bytes read
            # past the run's end, where there are any, are never taken
            acc = np.int64(0)
            bits = 0
            for _ in range(count):
                if bits < width:
                    if pos + 4 <= end:
                        word = (np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
                                | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 3]) << 24))
                        pos += 4
                        acc |= word << bits
                        bits += 32
                    else:
                        while bits < width:
                            acc |= np.int64(buf[pos]) << bits
                            pos += 1
                            bits += 8
                value = acc & mask
                acc = np.int64(np.uint64(acc) >> np.uint64(width))
                bits -= width
                if i < n:  # the last group is padded to eight values
                    if value >= size:
                        return BAD
                    out[i] = lut[value]
                    i += 1
            pos = stop
        else:
            count = header >> 1
            if pos + vbytes > end:
                return BAD
            value = np.int64(0)
            for k in range(vbytes):
                value |= np.int64(buf[pos + k]) << (8 * k)
            pos += vbytes
            if count > 0 and value >= size:
                return BAD
            stop = min(n, i + count)
            if stop > i:
                entry = lut[value]
                for k in range(i, stop):
                    out[k] = entry
            i = stop
    return pos


@njit(cache=True, nogil=True)
def plain_views(buf, pos, end, n, views):
    """``n`` PLAIN byte arrays from ``buf[pos:end]`` as Arrow string views (``views``: (n, 2)
    uint64) whose long strings point into ``buf`` (buffer 0). Returns (position after them,
    longest length, the bytes of the inline strings or'ed together in their places: no bit
    0x80 in any byte, they are ASCII), or (BAD, 0, 0) when the data ends early."""
    longest = 0
    high = np.uint64(0)
    for i in range(n):
        if pos + 4 > end:
            return BAD, 0, high
        length = (np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8) | (np.int64(buf[pos + 2]) << 16)
                  | (np.int64(buf[pos + 3]) << 24))
        pos += 4
        if pos + length > end:
            return BAD, 0, high
        if length > longest:
            longest = length
        w0 = np.uint64(0)
        w1 = np.uint64(0)
        for k in range(min(length, 4)):
            w0 |= np.uint64(buf[pos + k]) << np.uint64(32 + 8 * k)
        if length <= INLINE:
            for k in range(4, length):
                w1 |= np.uint64(buf[pos + k]) << np.uint64(8 * (k - 4))
            high |= w0 | w1
        else:
            w1 = np.uint64(pos) << np.uint64(32)
        views[i, 0] = w0 | np.uint64(length)
        views[i, 1] = w1
        pos += length
    return pos, longest, high


@njit(cache=True, nogil=True)
def spread(defined, values, out, missing):
    """Values of the defined rows (``defined`` != 0), in order, into ``out``; ``missing``
    where a row has no value. Returns how many values were taken."""
    k = 0
    for i in range(defined.shape[0]):
        if defined[i]:
            out[i] = values[k]
            k += 1
        else:
            out[i] = missing
    return k


def warm_up() -> None:
    buf = np.zeros(8, np.uint8)
    buf.setflags(write=False)
    for lut in (np.zeros(1, np.int32), np.zeros(1, np.int64)):
        hybrid_lookup(buf, 0, 0, 1, 0, lut, np.zeros(1, lut.dtype))
        spread(np.ones(1, np.int32), lut, np.zeros(1, lut.dtype), lut.dtype.type(0))
    plain_views(buf, 0, 0, 0, np.zeros((1, 2), np.uint64))
