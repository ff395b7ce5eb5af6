from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import polars as pl
import pytest

from assay.errors import InputError
from assay.events import read_events

CSV = """event_id,CustomerID,when,item,amount,store
1,c1,2024-01-01T10:00:00Z,a,1.50,s1
2,c2,2024-01-01 11:00:00+01:00,b,,s2
3,c1,2024-01-01T10:00:00,c,-2,s3
4,c3,1704103200,d,3,s1
5,c3,1704103200000,e,3,s1
6,c4,2024-01-02,f,4,s1
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def expected_ts():
    return [datetime(2024, 1, 1, 10, tzinfo=UTC), datetime(2024, 1, 1, 10, tzinfo=UTC),
            datetime(2024, 1, 1, 10, tzinfo=UTC), datetime(2024, 1, 1, 10, tzinfo=UTC),
            datetime(2024, 1, 1, 10, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)]


@pytest.mark.parametrize("name", ["e.csv", "e.csv.gz"])
def test_csv_with_mapping_and_mixed_timestamps(tmp_path, name):
    path = write(tmp_path, name, CSV)
    events = read_events(path, mapping={"entity": "CustomerID", "ts": "when"}).events
    assert events["ts"].to_list() == expected_ts()
    assert events["amount"].to_list() == [1.5, 0.0, -2.0, 3.0, 3.0, 4.0]  # empty amount -> 0
    assert events["quantity"].to_list() == [1.0] * 6
    assert events["entity"].to_list() == ["c1", "c2", "c1", "c3", "c3", "c4"]
    assert events["store"].to_list() == ["s1", "s2", "s3", "s1", "s1", "s1"]  # kept as attribute
    assert events["event_id"].dtype == pl.String


def test_jsonl_and_parquet_give_the_same_events(tmp_path):
    csv_events = read_events(write(tmp_path, "e.csv", CSV), mapping={"entity": "CustomerID", "ts": "when"}).events
    rows = pl.read_csv(write(tmp_path, "x.csv", CSV), infer_schema=False).to_dicts()
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    pq = tmp_path / "e.parquet"
    pl.DataFrame(rows).write_parquet(pq)
    for path in (jsonl, pq):
        got = read_events(path, mapping={"entity": "CustomerID", "ts": "when"}).events
        assert got.drop("_file").equals(csv_events.drop("_file"))


def test_several_files_are_read_in_order(tmp_path):
    a = write(tmp_path, "a.csv", "event_id,entity,ts\n1,x,2024-01-01T00:00:00Z\n")
    b = write(tmp_path, "b.csv", "event_id,entity,ts,extra\n2,y,2024-01-01T00:00:00Z,7\n")
    events = read_events([a, b]).events
    assert events["event_id"].to_list() == ["1", "2"]
    assert events["extra"].to_list() == [None, 7]
    assert events["_file"].to_list() == [str(a), str(b)]


@pytest.mark.parametrize("body, row, column, value, reason", [
    ("1,c1,not-a-date,a,1\n", 1, "ts", "not-a-date", "not a timestamp"),
    ("1,c1,2024-01-01T00:00:00Z,a,1\n2,c1,2024-01-01T00:00:00Z,a,12abc\n", 2, "amount", "12abc", "not a number"),
    ("1,,2024-01-01T00:00:00Z,a,1\n", 1, "entity", None, "empty"),
    ("1,c1,,a,1\n", 1, "ts", None, "empty"),
    ("1,c1,2024-13-01T00:00:00Z,a,1\n", 1, "ts", "2024-13-01T00:00:00Z", "not a timestamp"),
])
def test_bad_rows_name_file_row_column_and_value(tmp_path, body, row, column, value, reason):
    path = write(tmp_path, "bad.csv", "event_id,entity,ts,item,amount\n" + body)
    with pytest.raises(InputError) as info:
        read_events(path)
    err = info.value
    assert (err.file, err.row, err.column) == (str(path), row, column)
    assert err.value == value
    assert reason in err.reason
    assert str(err).startswith(f"{path}: row {row}, column '{column}'")


def test_missing_required_column_is_named(tmp_path):
    path = write(tmp_path, "e.csv", "event_id,customer,ts\n1,a,2024-01-01\n")
    with pytest.raises(InputError, match="required column 'entity' is missing.*--map entity=NAME"):
        read_events(path)


def test_mapping_to_a_missing_column_is_named(tmp_path):
    path = write(tmp_path, "e.csv", "event_id,entity,ts\n1,a,2024-01-01\n")
    with pytest.raises(InputError, match="--map entity=Cust: the input has no column 'Cust'"):
        read_events(path, mapping={"entity": "Cust"})


def test_skip_mode_collects_rejects_with_reasons(tmp_path):
    path = write(tmp_path, "e.csv", "event_id,entity,ts,amount\n1,a,2024-01-01,1\n2,a,bad,2\n3,,2024-01-01,x\n"
                                    "4,b,2024-01-02,4\n")
    result = read_events(path, skip_errors=True)
    assert result.events["event_id"].to_list() == ["1", "4"]
    rejects = result.rejects.sort("row")
    assert rejects["row"].to_list() == [2, 3]
    assert rejects["column"].to_list()[0] == "ts"
    assert set(rejects.columns) == {"file", "row", "column", "value", "reason"}


def test_bad_json_line_is_named(tmp_path):
    path = write(tmp_path, "e.jsonl", '{"event_id": "1", "entity": "a", "ts": 0}\n{oops\n')
    with pytest.raises(InputError, match="row 2.*not valid JSON"):
        read_events(path)


def test_parquet_timestamp_units_are_converted(tmp_path):
    # NOTES-performance: a timestamp[s] column comes back as milliseconds; windows must not shrink
    for unit in ("ms", "us", "ns"):
        frame = pl.DataFrame({"event_id": ["1"], "entity": ["a"],
                              "ts": pl.Series([datetime(2024, 1, 1, 10)]).dt.cast_time_unit(unit)})
        path = tmp_path / f"t_{unit}.parquet"
        frame.write_parquet(path)
        assert read_events(path).events["ts"].to_list() == [datetime(2024, 1, 1, 10, tzinfo=UTC)]


def test_epoch_numbers_in_a_numeric_column():
    frame = pl.DataFrame({"event_id": ["1", "2"], "entity": ["a", "a"], "ts": [1704103200, 1704103200500]})
    got = read_events(frame).events["ts"].to_list()
    assert got == [datetime(2024, 1, 1, 10, tzinfo=UTC), datetime(2024, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)]
