"""Alert ids: many at once are the ids of one at a time."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.alerts import alert_id, alert_ids

TEXT = st.text(max_size=12)  # any unicode, the separator \x1f included


@settings(max_examples=100, deadline=None)
@given(purpose=TEXT, rows=st.lists(st.tuples(TEXT, st.integers(1, 10**6), TEXT, TEXT, st.integers(0, 10**6)),
                                   max_size=20))
def test_alert_ids_of_many_equal_alert_id_of_each(purpose, rows):
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
    got = alert_ids(purpose, pl.Series(columns[0], dtype=pl.String), pl.Series(columns[1], dtype=pl.Int64),
                    pl.Series(columns[2], dtype=pl.String), pl.Series(columns[3], dtype=pl.String),
                    pl.Series(columns[4], dtype=pl.Int64))
    assert got.to_list() == [alert_id(purpose, *row) for row in rows]
