"""Engine against the reference evaluator on the public data sets in ../shared/data."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pytest

import assay
from gen import comparable
from reference import RefScenario, reference_alerts


def to_frame(rows: list[dict], extra: tuple[str, ...] = ()) -> pl.DataFrame:
    data = {
        "event_id": pl.Series([r["event_id"] for r in rows], dtype=pl.String),
        "entity": pl.Series([r["entity"] for r in rows], dtype=pl.String),
        "ts": pl.Series([r["ts"] for r in rows], dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        "item": pl.Series([r.get("item") for r in rows], dtype=pl.String),
        "amount": pl.Series([float(r["amount"]) if r.get("amount") is not None else None for r in rows],
                            dtype=pl.Float64),
    }
    for col in extra:
        data[col] = pl.Series([r.get(col) for r in rows])
    return pl.DataFrame(data)


def micros(text: str, fmt: str) -> int:
    return int(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()) * 1_000_000


def check(purpose: str, refs: list[RefScenario], yaml_text: str, rows: list[dict], frame: pl.DataFrame,
          minimum: int) -> None:
    expected = reference_alerts(purpose, refs, rows)
    got = comparable(assay.run(yaml_text, frame))
    assert len(expected) >= minimum, "the scenarios should fire on this data"
    assert got == expected
    # and the same rows fed as a stream in small micro-batches
    engine = assay.stream(yaml_text)
    parts = [engine.push(assay.read_events(frame[i:i + 997]).events).alerts for i in range(0, frame.height, 997)]
    parts.append(engine.flush())
    assert comparable(pl.concat(parts)) == expected


@pytest.fixture
def bakery(data_dir):
    rows = []
    with open(data_dir / "bakery" / "BreadBasket_DMS.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append({"event_id": r["Transaction"], "entity": "bakery", "day": r["Date"],
                         "ts": micros(f"{r['Date']} {r['Time']}", "%Y-%m-%d %H:%M:%S"),
                         "item": None if r["Item"] == "NONE" else r["Item"]})
    return rows


BAKERY = """
version: 1
purpose: retail-insight
scenarios:
  - {id: coffee-bread-cake, kind: combination, items: [Coffee, Bread, Cake], window: 15m}
  - {id: hot-drinks, kind: combination, items: [Coffee, Tea, Hot chocolate, Juice], min_distinct: 3, window: 30m}
  - {id: busy-hour, kind: aggregate, metric: count, op: ">=", threshold: 40, window: 1h}
  - {id: varied, kind: aggregate, metric: distinct(item), op: ">=", threshold: 12, window: 30m}
  - {id: coffee-day, kind: aggregate, key: day, metric: count, op: ">", threshold: 5, window: 1h,
     where: "item == 'Coffee'"}
  - {id: baskets, kind: aggregate, metric: distinct(event_id), op: ">=", threshold: 15, window: 1h}
"""


def test_bakery_identical_timestamps(bakery):
    refs = [
        RefScenario("coffee-bread-cake", "combination", 900, items=("Coffee", "Bread", "Cake"), min_distinct=3),
        RefScenario("hot-drinks", "combination", 1800, items=("Coffee", "Tea", "Hot chocolate", "Juice"),
                    min_distinct=3),
        RefScenario("busy-hour", "aggregate", 3600, metric="count", op=">=", threshold=Decimal(40)),
        RefScenario("varied", "aggregate", 1800, metric="distinct", column="item", op=">=", threshold=Decimal(12)),
        RefScenario("coffee-day", "aggregate", 3600, key="day", where=lambda r: r.get("item") == "Coffee",
                    metric="count", op=">", threshold=Decimal(5)),
        RefScenario("baskets", "aggregate", 3600, metric="distinct", column="event_id", op=">=",
                    threshold=Decimal(15)),
    ]
    check("retail-insight", refs, BAKERY, bakery, to_frame(bakery, ("day",)), minimum=200)


@pytest.fixture
def groceries(data_dir):
    rows = []
    base = micros("2024-01-01 00:00:00", "%Y-%m-%d %H:%M:%S")
    with open(data_dir / "groceries" / "groceries.csv", newline="") as fh:
        for i, line in enumerate(csv.reader(fh)):
            for item in (x for x in line if x):
                # one basket every 10 minutes, 400 customers taking turns
                rows.append({"event_id": f"b{i}", "entity": f"cust{i % 400}", "ts": base + i * 600 * 1_000_000,
                             "item": item, "amount": Decimal(len(item)) / 4})
    return rows


GROCERIES = """
version: 1
purpose: retail-insight
scenarios:
  - {id: breakfast, kind: combination, items: [whole milk, yogurt, rolls/buns], window: 7d}
  - {id: fruit, kind: combination, items: [citrus fruit, tropical fruit, pip fruit, root vegetables],
     min_distinct: 3, window: 72h}
  - {id: many-lines, kind: aggregate, metric: count, op: ">=", threshold: 25, window: 7d}
  - {id: variety, kind: aggregate, metric: distinct(item), op: ">=", threshold: 20, window: 7d}
  - {id: spend, kind: aggregate, metric: sum(amount), op: ">", threshold: 60.25, window: 7d}
  - {id: mean-line, kind: aggregate, metric: mean(amount), op: ">=", threshold: 4.5, window: 72h}
"""


def test_groceries_baskets(groceries):
    refs = [
        RefScenario("breakfast", "combination", 7 * 86400, items=("whole milk", "yogurt", "rolls/buns"),
                    min_distinct=3),
        RefScenario("fruit", "combination", 72 * 3600,
                    items=("citrus fruit", "tropical fruit", "pip fruit", "root vegetables"), min_distinct=3),
        RefScenario("many-lines", "aggregate", 7 * 86400, metric="count", op=">=", threshold=Decimal(25)),
        RefScenario("variety", "aggregate", 7 * 86400, metric="distinct", column="item", op=">=",
                    threshold=Decimal(20)),
        RefScenario("spend", "aggregate", 7 * 86400, metric="sum", column="amount", op=">",
                    threshold=Decimal("60.25")),
        RefScenario("mean-line", "aggregate", 72 * 3600, metric="mean", column="amount", op=">=",
                    threshold=Decimal("4.5")),
    ]
    check("retail-insight", refs, GROCERIES, groceries, to_frame(groceries), minimum=100)


def test_online_retail_through_the_cli_mapping(data_dir, tmp_path):
    """Real invoices read through --map, against the reference on the same rows."""
    path = data_dir / "online-retail" / "online_retail_20k.csv.gz"
    rows = []
    with gzip.open(path, "rt", newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append({"event_id": r["InvoiceNo"], "entity": r["CustomerID"], "item": r["StockCode"],
                         "ts": micros(r["InvoiceDate"], "%Y-%m-%d %H:%M:%S"),
                         "amount": Decimal(r["Quantity"]) * Decimal(r["UnitPrice"]),
                         "Quantity": int(r["Quantity"])})
    yaml_text = """
version: 1
purpose: retail-insight
input:
  map: {event_id: InvoiceNo, entity: CustomerID, ts: InvoiceDate, item: StockCode}
scenarios:
  - {id: bulk, kind: aggregate, metric: sum(Quantity), op: ">", threshold: 1000, window: 1d}
  - {id: wide-basket, kind: aggregate, metric: distinct(item), op: ">=", threshold: 40, window: 1h}
  - {id: cancellations, kind: aggregate, metric: count, op: ">=", threshold: 3, window: 7d,
     where: "Quantity < 0"}
  - {id: lights, kind: combination, items: ["85123A", "71053", "84406B"], window: 7d}
"""
    refs = [
        RefScenario("bulk", "aggregate", 86400, metric="sum", column="Quantity", op=">", threshold=Decimal(1000)),
        RefScenario("wide-basket", "aggregate", 3600, metric="distinct", column="item", op=">=",
                    threshold=Decimal(40)),
        RefScenario("cancellations", "aggregate", 7 * 86400, where=lambda r: r["Quantity"] < 0, metric="count",
                    op=">=", threshold=Decimal(3)),
        RefScenario("lights", "combination", 7 * 86400, items=("85123A", "71053", "84406B"), min_distinct=3),
    ]
    for r in rows:
        r["Quantity"] = Decimal(r["Quantity"])
    expected = reference_alerts("retail-insight", refs, rows)
    assert len(expected) > 20
    assert comparable(assay.run(yaml_text, path)) == expected
