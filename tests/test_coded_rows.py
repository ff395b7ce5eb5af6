"""A batch of combination packs read from Parquet pages as codes gives exactly the alerts of
the reference evaluator, and of the ordinary read; files it cannot read take that read."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import assay
from assay import coded_rows
from gen import ITEMS, WINDOWS, _yaml_str, comparable, events, to_frame
from reference import RefScenario, reference_alerts


@st.composite
def packs(draw) -> tuple[list[RefScenario], str]:
    """Combination scenarios without a ``where``, keyed by entity or counterparty."""
    refs, lines = [], ["version: 1", "purpose: fraud", "scenarios:"]
    for k in range(draw(st.integers(1, 4))):
        window = draw(st.sampled_from(WINDOWS))
        key = draw(st.sampled_from(["entity", "entity", "counterparty"]))
        items = draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=4, unique=True))
        least = draw(st.integers(1, len(items)))
        lines += [f"  - id: s{k}", f"    window: {window}s", f"    key: {key}", "    kind: combination",
                  f"    items: [{', '.join(_yaml_str(i) for i in items)}]", f"    min_distinct: {least}"]
        refs.append(RefScenario(f"s{k}", "combination", window, key, None, tuple(items), least))
    return refs, "\n".join(lines) + "\n"


class Spy:
    """Counts the batches read as codes (``read_coded`` returning rows, not None)."""

    def __init__(self) -> None:
        self.coded = 0
        self._real = coded_rows.read_coded

    def __call__(self, *args, **kwargs):
        out = self._real(*args, **kwargs)
        self.coded += out is not None
        return out


def run_spied(spec: str, paths, **kwargs) -> tuple[pl.DataFrame, int]:
    spy = Spy()
    with mock.patch("assay.api.read_coded", spy), mock.patch.object(coded_rows, "MIN_RELEVANT_SHARE", 0.0):
        alerts = assay.run(spec, paths, **kwargs)
    return alerts, spy.coded


WRITES = [
    {"row_group_size": 7, "data_page_size": 64},
    {"compression": "snappy"},
    {"use_pyarrow": True, "pyarrow_options": {"data_page_version": "2.0", "dictionary_pagesize_limit": 16,
                                              "row_group_size": 5}},
    {"use_pyarrow": True, "pyarrow_options": {"use_dictionary": False, "compression": "none"}},
]


@given(rows=events(), spec=packs(), write=st.sampled_from(WRITES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_packs_read_as_codes_equal_reference(rows, spec, write):
    refs, text = spec
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.parquet"
        frame = to_frame(rows)
        frame.write_parquet(path, **write)
        alerts, coded = run_spied(text, path)
    assert comparable(alerts) == reference_alerts("fraud", refs, rows)
    assert coded == 1 or frame.height == 0


def basket_frame(n: int, seed: int, *, sorted_ts: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 3 * 86400, n)) if sorted_ts else rng.integers(0, 3 * 86400, n)
    return pl.DataFrame({
        "event_id": [f"t{i // 3}" for i in range(n)],  # baskets of three lines: positions count them
        "entity": [f"customer-{k:04d}-with-a-long-id" if k % 3 else f"c{k}" for k in rng.integers(0, 200, n)],
        "ts": pl.Series(ts * 1_000_000).cast(pl.Datetime("us", "UTC")),
        "item": rng.choice(["a", "b", "c", "d", "e", "ü"], n).tolist(),
        "counterparty": [None if k == 0 else f"m{k}" for k in rng.integers(0, 20, n)],
    })


SPEC = """
version: 1
purpose: fraud
scenarios:
  - {id: ab, kind: combination, items: [a, b], window: 6h}
  - {id: abc, kind: combination, items: [a, b, c], min_distinct: 2, window: 1d}
  - {id: cp, kind: combination, items: [d, ü], window: 2h, key: counterparty}
"""


@pytest.mark.parametrize("sorted_ts", [True, False])
def test_coded_batch_equals_ordinary_read(tmp_path, sorted_ts):
    frame = basket_frame(20_000, seed=5, sorted_ts=sorted_ts)
    path = tmp_path / "e.parquet"
    frame.write_parquet(path, row_group_size=3000)
    alerts, coded = run_spied(SPEC, path)
    assert coded == 1 and alerts.height > 100
    assert alerts.equals(assay.run(SPEC, frame))  # a frame takes the ordinary path


def test_several_files_and_a_mapping(tmp_path):
    frame = basket_frame(6000, seed=7)
    renamed = frame.rename({"entity": "CustomerID", "ts": "When"})
    paths = []
    for k, part in enumerate(renamed.iter_slices(2500)):
        paths.append(tmp_path / f"p{k}.parquet")
        part.write_parquet(paths[-1])
    mapping = {"entity": "CustomerID", "ts": "When"}
    alerts, coded = run_spied(SPEC, paths, mapping=mapping)
    assert coded == 1
    assert alerts.equals(assay.run(SPEC, frame))


def test_evidence_rows_are_read_again_when_asked(tmp_path):
    """A store keeps each alert's evidence rows: a coded batch gives the rows the scan's
    filter gives."""
    frame = basket_frame(5000, seed=9)
    path = tmp_path / "e.parquet"
    frame.write_parquet(path)
    with mock.patch.object(coded_rows, "MIN_RELEVANT_SHARE", 0.0):
        result = assay.run_detailed(SPEC, path)
    with mock.patch("assay.api.read_coded", lambda *args: None):
        scanned = assay.run_detailed(SPEC, path)
    assert result.rows_read == scanned.rows_read == 5000
    assert result.alerts.equals(scanned.alerts)
    assert result.events is not None and result.events.equals(scanned.events)


@pytest.mark.parametrize("case", ["where", "selective", "integer key", "int96", "delta", "lz4"])
def test_what_codes_cannot_read_takes_the_ordinary_read(tmp_path, case):
    frame = basket_frame(4000, seed=11)
    spec = SPEC
    path = tmp_path / "e.parquet"
    if case == "where":
        spec = SPEC.replace("window: 6h}", "window: 6h, where: \"counterparty != 'm3'\"}")
    elif case == "selective":  # one item of six: the scan's filter reads fewer rows
        spec = "version: 1\npurpose: fraud\nscenarios:\n  - {id: a, kind: combination, items: [a], window: 1h}\n"
    elif case == "integer key":
        frame = frame.with_columns(pl.col("entity").str.len_bytes().cast(pl.Int64).alias("entity"))
    table = frame.to_arrow()
    if case == "int96":
        pq.write_table(table, path, use_deprecated_int96_timestamps=True)
    elif case == "delta":
        pq.write_table(table, path, use_dictionary=["entity", "item"], column_encoding={"ts": "DELTA_BINARY_PACKED"})
    elif case == "lz4":
        frame.write_parquet(path, compression="lz4")
    else:
        frame.write_parquet(path)
    spy = Spy()
    with mock.patch("assay.api.read_coded", spy):
        alerts = assay.run(spec, path)
    assert spy.coded == 0
    assert alerts.equals(assay.run(spec, frame))


@pytest.mark.parametrize("key", ["entity", "counterparty"])
def test_key_text_that_is_not_utf8_stops_the_run_naming_the_file(tmp_path, key):
    """A key column that may be empty (counterparty) is read as codes; a required one whose
    statistics are not text takes the ordinary read. Either way: one error naming the file."""
    frame = pl.DataFrame({"event_id": ["t0", "t1"], "entity": ["xx\u00e9", "yy"], "counterparty": ["mm\u00e9", "nn"],
                          "ts": pl.Series([0, 1]).cast(pl.Datetime("us", "UTC")), "item": ["a", "b"]})
    path = tmp_path / "e.parquet"
    pq.write_table(frame.to_arrow(), path, compression="none", use_dictionary=False)
    text = {"entity": "xx\u00e9", "counterparty": "mm\u00e9"}[key].encode()
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(path.read_bytes().replace(text, text[:2] + b"\xff\xfe"))
    spec = f"version: 1\npurpose: fraud\nscenarios:\n  - {{id: ab, kind: combination, items: [a, b], window: 1h, key: {key}}}\n"
    with pytest.raises(assay.InputError) as caught:
        run_spied(spec, broken)
    assert caught.value.file == str(broken)
    if key == "counterparty":
        assert caught.value.column == "counterparty" and caught.value.value == b"mm\xff\xfe"


@pytest.mark.parametrize("spec", [SPEC, "version: 1\npurpose: fraud\nscenarios:\n"
                                        "  - {id: a, kind: combination, items: [a], window: 1h}\n"])
def test_a_damaged_file_stops_the_run_with_one_error_naming_it(tmp_path, spec):
    """Bytes overwritten anywhere in the pages: the run ends, or stops with an error naming the
    file (read as codes or by the scan); never a traceback. Without checksums, damage can pass
    unnoticed: only how a run ends is checked here."""
    path = tmp_path / "e.parquet"
    basket_frame(6000, seed=13).write_parquet(path, row_group_size=2000)
    data = path.read_bytes()
    footer = int.from_bytes(data[-8:-4], "little")
    rng = np.random.default_rng(7)
    for at in sorted(rng.integers(4, len(data) - footer - 8 - 16, 40).tolist()):
        broken = tmp_path / "broken.parquet"
        broken.write_bytes(data[:at] + bytes(rng.integers(0, 256, 16).tolist()) + data[at + 16:])
        try:
            with mock.patch.object(coded_rows, "MIN_RELEVANT_SHARE", 0.0):
                assay.run(spec, broken)
        except assay.AssayError as exc:
            assert str(broken) in str(exc)


def test_a_row_group_that_fails_passes_the_key_turn_on_in_order(tmp_path):
    """Key dictionaries are coded into one table a row group at a time: one that fails before
    its turn (here: its times) must not let the next one code beside the one still coding."""
    frame = basket_frame(6000, seed=17)
    path = tmp_path / "e.parquet"
    frame.write_parquet(path, row_group_size=1000)
    lock = threading.Lock()
    active, most, calls = [0], [0], [0]
    real_code, real_times = coded_rows._Reader._code_keys, coded_rows._Reader._times

    def code_keys(self, *args):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            calls[0] += 1
            first = calls[0] == 1
        try:
            if first:
                time.sleep(0.3)  # the first row group codes slowly: the others catch up
            return real_code(self, *args)
        finally:
            with lock:
                active[0] -= 1

    def times(self, file, column, pages, rows):
        if rows.start == 1000:
            raise coded_rows.pp.Unsupported("the second row group fails")
        return real_times(self, file, column, pages, rows)

    with mock.patch.object(coded_rows._Reader, "_code_keys", code_keys), \
            mock.patch.object(coded_rows._Reader, "_times", times):
        alerts, coded = run_spied(SPEC, path)
    assert coded == 0 and most[0] == 1  # the pages' read gave up; the scan read the file
    assert alerts.equals(assay.run(SPEC, frame))


def test_the_toucher_writes_zeros_and_is_done_when_stopped():
    """Arrays written before use (``_Toucher``): zeros, and nothing written once ``stop`` returns."""
    arrays = [np.full(3 << 20, 7, np.int64), np.full((1 << 20, 2), 7, np.uint64)]
    toucher = coded_rows._Toucher(arrays)
    toucher._thread.join()  # left to finish
    toucher.stop()
    toucher.stop()  # twice: no harm
    assert all(not a.any() for a in arrays) and not toucher._thread.is_alive()
    big = np.full(64 << 20, 7, np.uint8)
    early = coded_rows._Toucher([big])
    early.stop()
    assert not early._thread.is_alive()
    snapshot = big.copy()
    time.sleep(0.05)
    assert np.array_equal(big, snapshot)  # stopped means stopped


@pytest.mark.parametrize("dictionary", [True, False])
def test_times_outside_the_footers_range_take_the_ordinary_read(tmp_path, dictionary):
    """Rows are packed from the footer's least time on: a time outside the statistics' range
    (a footer that lies) leaves the pages' read for the scan, which gives the same alerts."""
    frame = basket_frame(5000, seed=19)
    path = tmp_path / "e.parquet"
    pq.write_table(frame.to_arrow(), path, use_dictionary=dictionary, row_group_size=1000)
    real = coded_rows._span

    def narrower(scan, ts, scale):
        lo, hi = real(scan, ts, scale)
        return lo + 1, hi

    one_pack = "\n".join(line for line in SPEC.splitlines() if "counterparty" not in line) + "\n"
    alerts, coded = run_spied(one_pack, path)
    assert coded == 1 and alerts.height > 10  # read as codes, packed, with the footer as it is
    with mock.patch.object(coded_rows, "_span", narrower):
        alerts, coded = run_spied(one_pack, path)
    assert coded == 0
    assert alerts.equals(assay.run(one_pack, frame))
