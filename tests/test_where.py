from __future__ import annotations

import polars as pl
import pytest

from assay.errors import WhereSyntaxError
from assay.where import WhereTypeError, columns, parse_where, render, to_polars

FRAME = pl.DataFrame({
    "amount": [5.0, 50.0, None, -3.0],
    "item": ["a", "b", "c", None],
    "channel": ["web", "pos", "web", "web"],
})


def select(text: str) -> list[bool]:
    return FRAME.select(to_polars(parse_where(text), FRAME.schema).alias("m"))["m"].to_list()


@pytest.mark.parametrize("text, expected", [
    ("amount > 10", [False, True, False, False]),
    ("amount >= 5 and channel == 'web'", [True, False, False, False]),
    ("amount < 0 or item = 'a'", [True, False, False, False]),
    ("item in ['a', 'c']", [True, False, True, False]),
    ("item not in ['a', 'c']", [False, True, False, False]),
    ("not (amount > 10)", [True, False, False, True]),
    ("not item == 'a'", [False, True, True, False]),
    ("(amount > 0) and (channel != \"pos\")", [True, False, False, False]),
    ("10 < amount", [False, True, False, False]),
])
def test_where_selects_rows(text, expected):
    assert select(text) == expected


def test_empty_column_makes_where_false_whatever_the_operators():
    # SPEC: a where that reads a column the row leaves empty is false for that row
    assert select("not amount > 1000")[2] is False
    assert select("item != 'zzz'")[3] is False


def test_columns_and_render_round_trip():
    tree = parse_where("amount > 1 and (item in ['x', 'y'] or not channel == 'web')")
    assert columns(tree) == {"amount", "item", "channel"}
    assert parse_where(render(tree)) == tree


@pytest.mark.parametrize("text, position", [
    ("amount >", 8),
    ("amount > 1 and", 14),
    ("__import__('os').system('true')", 16),
    ("amount >> 3", 8),
    ("item in ['a',", 13),
    ("1 > 2", 2),
    ("amount", 6),
    ("", 0),
])
def test_syntax_errors_name_the_position(text, position):
    with pytest.raises(WhereSyntaxError) as info:
        parse_where(text)
    assert info.value.position == position
    assert f"position {position}" in str(info.value)


def test_type_errors_are_explained():
    with pytest.raises(WhereTypeError, match="numeric column 'amount' with text"):
        to_polars(parse_where("amount > 'x'"), FRAME.schema)
    with pytest.raises(WhereTypeError, match="text column 'item' with number"):
        to_polars(parse_where("item == 3"), FRAME.schema)
    with pytest.raises(WhereTypeError, match="which the events do not have"):
        to_polars(parse_where("nope == 3"), FRAME.schema)
