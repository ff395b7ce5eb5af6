"""Exact string codes read from Arrow string views: the codes of a dict, whatever the strings'
lengths (inline or not), chunks, slices, empty values and the table's growth."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from assay import views
from assay.views import StringCodes, string_codes

# inline (up to 12 bytes), just past it, long; unicode counts in bytes
TEXTS = st.one_of(
    st.sampled_from(["", "a", "abcd", "abcde", "abcdefghijkl", "abcdefghijklm", "ñ" * 6, "ñ" * 7, "日本語"]),
    st.text(max_size=40),
    st.none(),
)


def model(values: list[str | None], seen: dict[str, int] | None = None, insert: bool = True) -> list[int]:
    seen = {} if seen is None else seen
    out = []
    for v in values:
        if v is None:
            out.append(-1)
        elif insert:
            out.append(seen.setdefault(v, len(seen)))
        else:
            out.append(seen.get(v, -1))
    return out


def chunked(values: list[str | None], cuts: list[int]) -> pl.Series:
    """A series of several chunks, some of them slices of larger arrays."""
    parts, start = [], 0
    for cut in sorted({min(c, len(values)) for c in cuts}) + [len(values)]:
        if cut > start:
            padded = pl.Series(["x" * 20, *values[start:cut], "y" * 30], dtype=pl.String)
            parts.append(padded.slice(1, cut - start))
            start = cut
    return pl.concat(parts, rechunk=False) if parts else pl.Series([], dtype=pl.String)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(TEXTS, max_size=120), cuts=st.lists(st.integers(0, 120), max_size=4),
       expected=st.integers(0, 200))
def test_codes_are_those_of_a_dict_in_order_of_first_appearance(values, cuts, expected):
    series = chunked(values, cuts)
    table = StringCodes(expected)  # a small table grows on the way
    assert table.add(series).tolist() == model(values)
    assert len(table) == len({v for v in values if v is not None})


@settings(max_examples=200, deadline=None)
@given(values=st.lists(TEXTS, max_size=120), cuts=st.lists(st.integers(0, 120), max_size=4),
       picks=st.lists(st.integers(0, 10_000), max_size=50))
def test_texts_of_codes_are_rebuilt_from_the_table(values, cuts, picks):
    """A batch read as codes makes the text of its alerts' keys from the table: inline strings
    from their slots, long ones from the arena (grown on the way), in any order and repeated."""
    table = StringCodes(1)
    table.add(chunked(values, cuts))
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    codes = np.array([p % len(distinct) for p in picks] if distinct else [], np.int32)
    texts = table.texts(codes)
    assert texts.dtype == pl.String and texts.to_list() == [distinct[c] for c in codes.tolist()]


@settings(max_examples=200, deadline=None)
@given(known=st.lists(TEXTS, max_size=40), asked=st.lists(TEXTS, max_size=60))
def test_find_looks_up_without_adding(known, asked):
    table = StringCodes()
    seen: dict[str, int] = {}
    assert table.add(pl.Series(known, dtype=pl.String)).tolist() == model(known, seen)
    assert table.find(pl.Series(asked, dtype=pl.String)).tolist() == model(asked, seen, insert=False)
    assert len(table) == len(seen)


@settings(max_examples=300, deadline=None)
@given(known=st.lists(TEXTS, max_size=40), values=st.lists(TEXTS, max_size=120),
       cuts=st.lists(st.integers(0, 120), max_size=4), parts=st.integers(1, 3))
def test_rows_in_are_the_rows_whose_value_is_in_the_table(known, values, cuts, parts):
    """Chunks of inline strings only or not, slices, empty values, on one to three threads."""
    table = StringCodes()
    table.add(pl.Series(known, dtype=pl.String))
    wanted = {v for v in known if v is not None}
    got = table.rows_in(chunked(values, cuts), parts)
    assert got.dtype == np.int64
    assert got.tolist() == [i for i, v in enumerate(values) if v in wanted]


def test_rows_in_a_large_column_against_many_values():
    """A filter of many words, most rows turned away, some let through wrongly and refused."""
    values = pl.Series([f"t{i}" for i in range(200_000)] + [f"a-much-longer-event-id-{i}" for i in range(50_000)])
    table = StringCodes()
    table.add(values.gather(np.arange(0, values.len(), 7)))
    assert table.rows_in(values).tolist() == list(range(0, values.len(), 7))


def test_long_strings_outgrow_the_arena_and_keep_their_codes():
    values = [f"customer-{i:05d}-" + "z" * (i % 300) for i in range(3000)] * 2
    codes, n = string_codes(pl.Series(values))
    assert n == 3000 and codes.tolist() == list(range(3000)) * 2


def test_a_filtered_column_with_long_strings_left_behind():
    """A selection keeps its data buffers: rows that remain may all be inline."""
    series = pl.Series(["a" * 50, "b", "c" * 40, "b", "d"]).filter(pl.Series([False, True, False, True, True]))
    assert string_codes(series)[0].tolist() == [0, 0, 1]


def test_other_types_are_coded_as_their_text():
    codes, n = string_codes(pl.Series([7, 3, 7, None, 3]))
    assert codes.tolist() == [0, 1, 0, -1, 1] and n == 2


def test_many_keys_grow_the_table_from_its_smallest_size():
    rng = np.random.default_rng(3)
    values = [f"c{x}" for x in rng.integers(0, 40_000, 150_000)]
    codes, n = string_codes(pl.Series(values))
    assert codes.tolist() == model(values)
    assert n == len(set(values)) and views.StringCodes(0).slots.size < codes.size
