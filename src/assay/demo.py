"""``assay demo``: a deterministic synthetic purchase stream with planted patterns.

About a million line items from heavy-tailed customers (baskets of several
lines, shared timestamps, refunds), plus three planted patterns: the
precursor trio bought across separate purchases, cash structuring just under
10,000, and fan-in bursts of many cards at one merchant. The report says how
many planted cases each scenario caught and how many ordinary keys matched
too: the base-rate lesson of transaction monitoring.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

START = 1_790_000_000  # 2026-09-21T14:13:20Z, seconds
DAYS = 30
PRECURSORS = ("pressure cooker", "kitchen timer", "ball bearings")
COMMON = ("bread", "milk", "eggs", "coffee", "apples", "bananas", "cheese", "yoghurt", "rice", "pasta",
          "tomatoes", "onions", "chicken", "butter", "tea", "water", "juice", "soap", "shampoo",
          "batteries", "light bulbs", "notebook", "pens", "dog food", "cat food", "wine", "beer")


def demo_pack() -> str:
    return resources.files("assay").joinpath("packs/demo.yaml").read_text(encoding="utf-8")


def generate(customers: int = 60_000, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (events, planted) where planted lists each planted key and its pattern."""
    rng = np.random.default_rng(seed)
    catalogue = list(COMMON) + [f"product-{i:03d}" for i in range(260)] + list(PRECURSORS) + ["cash deposit"]
    n_items = len(catalogue)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity[[catalogue.index(p) for p in PRECURSORS]] = [0.02, 0.03, 0.015]
    popularity[catalogue.index("cash deposit")] = 0.0
    popularity /= popularity.sum()
    prices = np.round(np.exp(rng.normal(1.6, 0.9, n_items)), 2) + 0.5
    prices[[catalogue.index(p) for p in PRECURSORS]] = [59.0, 7.5, 12.9]
    merchants = 400
    merchant_weight = 1.0 / np.arange(1, merchants + 1) ** 0.5
    merchant_weight /= merchant_weight.sum()

    # purchases: heavy-tailed number per customer, uniform over the month with a daily rhythm
    per_customer = 1 + np.floor(rng.lognormal(1.2, 1.0, customers)).astype(np.int64)
    buyer = np.repeat(np.arange(customers), per_customer)
    n_purchases = buyer.size
    day = rng.integers(0, DAYS, n_purchases)
    hour_of_day = np.clip(rng.normal(14, 3.5, n_purchases), 7, 22)
    ts = START + day * 86400 + (hour_of_day * 3600).astype(np.int64)
    shop = rng.choice(merchants, n_purchases, p=merchant_weight)
    channel = np.where(rng.random(n_purchases) < 0.8, "card", "cash")
    lines = 1 + rng.poisson(1.8, n_purchases)
    # line items
    row_purchase = np.repeat(np.arange(n_purchases), lines)
    n_rows = row_purchase.size
    item = rng.choice(n_items, n_rows, p=popularity)
    amount = np.round(prices[item] * rng.integers(1, 4, n_rows), 2)
    refund = rng.random(n_rows) < 0.01
    amount = np.where(refund, -amount, amount)
    events = pl.DataFrame({
        "event_id": np.char.add("t", row_purchase.astype(str)),
        "entity": _customer_ids(buyer[row_purchase]),
        "ts": ts[row_purchase],
        "item": np.array(catalogue, dtype=object)[item].astype(str),
        "amount": amount,
        "counterparty": np.char.add("shop-", shop[row_purchase].astype(str)),
        "channel": channel[row_purchase],
        "type": np.where(refund, "refund", "sale"),
    })
    # ordinary cash deposits: a few customers, amounts of every size (some just under 10,000)
    depositors = rng.choice(customers, customers // 25, replace=False)
    n_dep = rng.integers(1, 4, depositors.size)
    dep_who = np.repeat(depositors, n_dep)
    dep_amount = np.round(np.exp(rng.normal(7.2, 1.0, dep_who.size)), 2)
    # a few cash-heavy small businesses bank their daily takings: legitimate, and sometimes just under
    shops = rng.choice(customers, 3, replace=False)
    dep_who = np.concatenate([dep_who, np.repeat(shops, DAYS)])
    dep_when = np.concatenate([START + rng.integers(0, DAYS * 86400, dep_who.size - 3 * DAYS),
                               START + np.tile(np.arange(DAYS) * 86400 + 64800, 3)])
    dep_amount = np.concatenate([dep_amount, np.round(rng.uniform(8000, 11000, 3 * DAYS), 2)])
    deposits = _deposits(dep_who, dep_when, dep_amount, "d")

    planted_rows, planted = [], []
    # 1. the precursor trio, in three purchases at three shops, one to five days apart
    trio_buyers = rng.choice(customers, 25, replace=False)
    for k, who in enumerate(trio_buyers):
        t0 = START + int(rng.integers(0, (DAYS - 6) * 86400))
        gaps = np.cumsum(rng.integers(3600, 2 * 86400, 3))
        rows = pl.DataFrame({
            "event_id": [f"p{k}-{j}" for j in range(3)],
            "entity": _customer_ids(np.array([who] * 3)),
            "ts": (t0 + gaps).astype(np.int64),
            "item": list(PRECURSORS),
            "amount": [59.0, 7.5, 12.9],
            "counterparty": [f"shop-{int(s)}" for s in rng.choice(merchants, 3, replace=False)],
            "channel": ["card", "cash", "card"],
            "type": ["sale"] * 3,
        })
        planted_rows.append(rows)
        planted.append((_customer_ids(np.array([who]))[0], "precursor-trio"))
    # 2. structuring: five to eight cash deposits of 9,000-9,990 within six days
    for who in rng.choice(customers, 15, replace=False):
        n = int(rng.integers(5, 9))
        when = START + int(rng.integers(0, (DAYS - 7) * 86400)) + np.sort(rng.integers(0, 6 * 86400, n))
        amounts = np.round(rng.uniform(9000, 9990, n), 2)
        planted_rows.append(_deposits(np.array([who] * n), when, amounts, f"s{who}-"))
        planted.append((_customer_ids(np.array([who]))[0], "cash-structuring"))
    # 3. fan-in: 40-60 different cards paying one small merchant within 45 minutes
    for k in range(4):
        merchant = f"shop-{merchants - 1 - k}"
        n = int(rng.integers(40, 61))
        cards = rng.choice(customers, n, replace=False)
        t0 = START + int(rng.integers(0, (DAYS - 1) * 86400))
        planted_rows.append(pl.DataFrame({
            "event_id": [f"f{k}-{j}" for j in range(n)],
            "entity": _customer_ids(cards),
            "ts": (t0 + np.sort(rng.integers(0, 45 * 60, n))).astype(np.int64),
            "item": ["product-000"] * n,
            "amount": np.round(rng.uniform(20, 90, n), 2),
            "counterparty": [merchant] * n,
            "channel": ["card"] * n,
            "type": ["sale"] * n,
        }))
        planted.append((merchant, "merchant-fan-in"))
    everything = pl.concat([events, deposits, *planted_rows], how="vertical_relaxed")
    # files from payment systems arrive in time order; ties keep their order
    everything = everything.sort("ts", maintain_order=True).with_columns(
        pl.from_epoch("ts", time_unit="s").dt.replace_time_zone("UTC"))
    labels = pl.DataFrame(planted, schema=["key", "pattern"], orient="row")
    return everything, labels


def _customer_ids(index: np.ndarray) -> np.ndarray:
    return np.char.add("c", np.char.zfill(index.astype(str), 6))


def _deposits(who: np.ndarray, when: np.ndarray, amount: np.ndarray, prefix: str) -> pl.DataFrame:
    n = who.size
    return pl.DataFrame({
        "event_id": [f"{prefix}{i}" for i in range(n)] if prefix != "d" else
        np.char.add("d", np.arange(n).astype(str)),
        "entity": _customer_ids(who),
        "ts": when.astype(np.int64),
        "item": ["cash deposit"] * n,
        "amount": amount,
        "counterparty": ["bank-branch"] * n,
        "channel": ["cash"] * n,
        "type": ["sale"] * n,
    })


def run_demo(directory: Path, *, customers: int = 60_000, seed: int = 7,
             console: Console | None = None) -> int:
    from .alerts import write_alerts
    from .api import run_detailed

    console = console or Console()
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    events, planted = generate(customers, seed)
    events_path = directory / "events.parquet"
    events.write_parquet(events_path)
    scenarios_path = directory / "scenarios.yaml"
    scenarios_path.write_text(demo_pack(), encoding="utf-8")
    planted.write_csv(directory / "planted.csv")
    planted.select("key", pl.lit(1).alias("label")).write_csv(directory / "labels.csv")
    built = time.perf_counter() - started
    console.print(f"built {events.height:,} synthetic line items from {customers:,} customers "
                  f"({events['event_id'].n_unique():,} purchases, 30 days) in {built:.1f} s")
    result = run_detailed(scenarios_path, [events_path])
    alerts_path = directory / "alerts.jsonl"
    write_alerts(result.alerts, alerts_path)
    console.print(f"ran {len(result.scenarios.scenarios)} scenarios over {result.rows_read:,} rows in "
                  f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s)\n")

    table = Table(title="what the demo scenarios found")
    for col in ("scenario", "alerts", "planted caught", "other keys alerted", "precision"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for s in result.scenarios.scenarios:
        alerted = set(result.alerts.filter(pl.col("scenario") == s.id)["key"].to_list())
        truth = set(planted.filter(pl.col("pattern") == s.id)["key"].to_list())
        caught = len(alerted & truth)
        others = len(alerted - truth)
        precision = f"{caught / len(alerted):.0%}" if alerted else "-"
        n_alerts = int((result.alerts["scenario"] == s.id).sum())
        table.add_row(s.id, f"{n_alerts:,}", f"{caught} of {len(truth)}", f"{others:,}", precision)
    console.print(table)
    console.print(
        "\nThe base-rate lesson: a rule that catches every planted case can still alert on ordinary "
        "customers who happen to match it. Among a million ordinary purchases even rare coincidences "
        "happen, so every alert is a lead for a person to review, not a finding. Backtest before "
        "going live.\n")
    console.print(f"files: {events_path} (events), {scenarios_path} (scenarios), {alerts_path} (alerts), "
                  f"{directory / 'planted.csv'} (planted keys)")
    console.print(f"try: assay check {scenarios_path}\n     assay run {scenarios_path} {events_path} "
                  f"--out {directory / 'alerts.csv'}\n     assay backtest {scenarios_path} {events_path} "
                  f"--labels {directory / 'labels.csv'} --population 10000000 --report {directory / 'report.html'}")
    return 0
