"""Mining: frequent itemsets and association rules over baskets.

Baskets come from the basket files of the field (FIMI/SPMF ``.dat``: one basket a
line, items separated by spaces; also gzipped) or from events: the items of one
transaction (``by="event_id"``), or the items one key bought within a window
(``by="entity", window="72h"``: the "together across purchases" view). For the
latter, each key's rows are cut into consecutive windows: a basket starts at the
key's next row not yet taken and holds every row of the key up to ``window`` after it.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from .durations import parse_duration
from .errors import UsageError
from .kernels import group_by_code
from .keys import encode
from .mining_kernels import eclat, first_in_basket, horizontal


@dataclass
class Baskets:
    """Baskets as (basket, item) pairs; ``keys`` names each basket's key when mined by key."""

    pairs: pl.DataFrame  # columns: basket (int64), item (str); one row per distinct item in a basket
    count: int
    keys: pl.Series | None = None
    source: str = "<baskets>"


def read_basket_file(path: str | Path, separator: str | None = None) -> Baskets:
    """FIMI/SPMF ``.dat`` (space-separated) or comma-separated basket lines; ``.gz`` allowed."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    opener = gzip.open if path.name.endswith(".gz") else open
    sep = separator if separator is not None else ("," if ".csv" in path.name else None)
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        lines = fh.read().splitlines()
    return baskets_from_lists((line.split(sep) for line in lines), len(lines), str(path))


def baskets_from_lists(baskets: Iterable[Iterable[str]], n: int | None = None, source: str = "<baskets>") -> Baskets:
    lists = [b if isinstance(b, list) else list(b) for b in baskets]
    lengths = np.fromiter((len(b) for b in lists), np.int64, len(lists))
    # no Python object per item: the strings go to Polars in one call, basket ids by NumPy
    items = pl.Series("item", list(chain.from_iterable(lists)), dtype=pl.String).str.strip_chars()
    basket = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
    return Baskets(_distinct_pairs(basket, items), n if n is not None else len(lists), source=source)


def _distinct_pairs(basket: np.ndarray, item: pl.Series) -> pl.DataFrame:
    """(basket, item) rows without repeats or empty items, ordered by basket (stable).

    A DataFrame.unique over strings holds a hash table of every row (150 MB for FIMI
    retail); items coded once and a last-basket-seen array per item do it in O(items).
    """
    pairs = pl.DataFrame({"basket": basket, "item": item}).filter(
        pl.col("item").is_not_null() & (pl.col("item") != ""))
    basket = pairs["basket"].to_numpy()
    order = _unless_in_basket_order(basket)
    if order is not None:
        pairs, basket = pairs[order], basket[order]
    codes, names = encode(pairs["item"])
    return pairs.filter(pl.Series(first_in_basket(basket, codes, names.len())))


def _unless_in_basket_order(basket: np.ndarray) -> np.ndarray | None:
    """The stable order that sorts rows by basket, or None when they already are."""
    if basket.size and (np.diff(basket) < 0).any():
        return np.argsort(basket, kind="stable")
    return None


def baskets_from_events(events: pl.DataFrame, by: str = "event_id", window: str | None = None) -> Baskets:
    """Baskets from canonical events: one per ``by`` value, or per key and window."""
    if by not in events.columns:
        raise UsageError(f"--by {by}: the events have no column '{by}'")
    rows = events.filter(pl.col("item").is_not_null() & pl.col(by).is_not_null())
    if window is None:
        codes = rows.select(pl.col(by).cast(pl.String).rank("dense").cast(pl.Int64) - 1)[by]
        pairs = _distinct_pairs(codes.to_numpy(), rows["item"])
        keys = rows.select(pl.col(by).cast(pl.String)).with_columns(codes.alias("basket")).unique(
            "basket", keep="first").sort("basket")[by]
        return Baskets(pairs, int(codes.max() + 1) if codes.len() else 0, keys, by)
    width = parse_duration(window)
    ordered = rows.select(pl.col(by).cast(pl.String).alias("key"), pl.col("ts").dt.epoch("us").alias("t"),
                          "item").with_row_index("_i").sort(["key", "t", "_i"])
    key = ordered["key"].to_list()
    t = ordered["t"].to_numpy()
    basket = np.empty(len(key), np.int64)
    current, start, last_key = -1, 0, None
    for i in range(len(key)):
        if key[i] != last_key or t[i] > start + width:
            current += 1
            start, last_key = t[i], key[i]
        basket[i] = current
    pairs = _distinct_pairs(basket, ordered["item"])
    keys = pl.DataFrame({"basket": basket, "key": key}).unique("basket", keep="first").sort("basket")["key"]
    return Baskets(pairs, current + 1, keys, f"{by} within {window}")


def min_count(min_support: float, n: int) -> int:
    """A fraction below 1 is a share of the baskets; 1 or more is a count."""
    if min_support <= 0:
        raise UsageError(f"--min-support must be positive, got {min_support}")
    return max(1, math.ceil(min_support * n - 1e-9)) if min_support < 1 else int(min_support)


def frequent_itemsets(baskets: Baskets, min_support: float, max_len: int | None = None) -> pl.DataFrame:
    """Every itemset in at least ``min_support`` of the baskets: items (sorted), count, support."""
    n = baskets.count
    threshold = min_count(min_support, n)
    schema = {"items": pl.List(pl.String), "count": pl.Int64, "support": pl.Float64}
    if n == 0 or baskets.pairs.height == 0:
        return pl.DataFrame(schema=schema)
    codes, names_all = encode(baskets.pairs["item"])
    counts = np.bincount(codes, minlength=names_all.len())
    frequent = np.flatnonzero(counts >= threshold)
    # Eclat order: ascending support (ties by name, so that the output is deterministic)
    name_rank = np.argsort(np.argsort(names_all.to_numpy()[frequent], kind="stable"), kind="stable")
    ordered = frequent[np.lexsort((name_rank, counts[frequent]))]
    names = names_all.gather(ordered)
    new_code = np.full(names_all.len(), -1, np.int64)
    new_code[ordered] = np.arange(ordered.size)
    item_code = new_code[codes]
    keep = item_code >= 0
    basket = baskets.pairs["basket"].to_numpy()[keep]
    item_code = item_code[keep]
    order = _unless_in_basket_order(basket)  # tid-lists must be ascending for the merges
    if order is not None:
        basket, item_code = basket[order], item_code[order]
    by_item, item_ptr = group_by_code(item_code, max(int(ordered.size), 1))
    tids = basket[by_item].astype(np.int32)
    item_ptr = item_ptr[: ordered.size + 1]
    longest = int(np.bincount(basket, minlength=n).max()) if basket.size else 1
    # no itemset is longer than the longest basket: that bounds the depth of the search
    depth = min(max_len, longest) if max_len else longest
    basket_ptr, basket_items = horizontal(item_ptr, tids, n)
    tid_cap, out_cap = max(1024, 4 * tids.size), 1 << 18
    while True:
        out_items = np.empty(out_cap * 4, np.int64)
        out_ptr = np.empty(out_cap + 1, np.int64)
        out_support = np.empty(out_cap, np.int64)
        found, n_items, tid_need = eclat(item_ptr, tids, threshold, depth, tid_cap, out_cap,
                                         out_items, out_ptr, out_support, basket_ptr, basket_items)
        if found >= 0:
            break
        if tid_need:
            tid_cap = max(tid_need, tid_cap * 2)
        else:
            out_cap *= 8
    return _itemset_frame(names, out_items[:n_items], out_ptr[:found + 1], out_support[:found], n)


def _itemset_frame(names: pl.Series, items: np.ndarray, ptr: np.ndarray, support: np.ndarray,
                   n: int) -> pl.DataFrame:
    """Itemsets with their items in name order, sorted by count (descending) then items.

    Sorting lists of strings in Polars costs more than the mining; names are ranked once
    and each itemset becomes a row of ranks, so two NumPy sorts do it.
    """
    found = support.size
    if found == 0:
        return pl.DataFrame(schema={"items": pl.List(pl.String), "count": pl.Int64, "support": pl.Float64})
    by_name = np.argsort(names.to_numpy(), kind="stable")
    rank = np.empty(names.len(), np.int64)
    rank[by_name] = np.arange(names.len())
    lengths = np.diff(ptr)
    width = int(lengths.max())
    sentinel = names.len()
    padded = np.full((found, width), sentinel, np.int64)
    row = np.repeat(np.arange(found), lengths)
    padded[row, np.arange(items.size) - ptr[row]] = rank[items]
    padded.sort(axis=1)
    padded[padded == sentinel] = -1  # a prefix sorts before its extensions
    order = np.lexsort([padded[:, k] for k in reversed(range(width))] + [-support])
    ranked = padded[order].ravel()
    values = names.gather(by_name).gather(ranked[ranked >= 0])
    offsets = np.zeros(found + 1, np.int64)
    np.cumsum(lengths[order], out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), values.to_arrow())
    count = support[order].astype(np.int64)
    return pl.DataFrame({"items": pl.Series("items", lists).cast(pl.List(pl.String)), "count": count,
                         "support": count / n})


def association_rules(itemsets: pl.DataFrame, n: int, min_confidence: float = 0.5) -> pl.DataFrame:
    """Rules X -> Y from frequent itemsets: support, confidence, lift, leverage, conviction."""
    counts = {tuple(items): c for items, c in zip(itemsets["items"].to_list(), itemsets["count"].to_list(),
                                                   strict=True)}
    rows = []
    for items, c in counts.items():
        if len(items) < 2:
            continue
        for mask in range(1, (1 << len(items)) - 1):
            left = tuple(x for k, x in enumerate(items) if mask >> k & 1)
            right = tuple(x for k, x in enumerate(items) if not mask >> k & 1)
            c_left, c_right = counts.get(left), counts.get(right)
            if not c_left or not c_right:
                continue
            confidence = c / c_left
            if confidence < min_confidence:
                continue
            s, s_left, s_right = c / n, c_left / n, c_right / n
            lift = confidence / s_right
            conviction = math.inf if confidence >= 1 else (1 - s_right) / (1 - confidence)
            rows.append((list(left), list(right), c, s, confidence, lift, s - s_left * s_right, conviction))
    schema = {"antecedent": pl.List(pl.String), "consequent": pl.List(pl.String), "count": pl.Int64,
              "support": pl.Float64, "confidence": pl.Float64, "lift": pl.Float64, "leverage": pl.Float64,
              "conviction": pl.Float64}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.sort(["lift", "confidence", "count"], descending=True)


def write_table(frame: pl.DataFrame, path: str | Path) -> None:
    """``.parquet``, ``.csv`` (lists as JSON) or ``.jsonl`` (one object per line)."""
    path = Path(path)
    name = path.name.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        frame.write_parquet(path)
    elif name.endswith(".jsonl"):
        frame.write_ndjson(path)
    elif name.endswith(".csv"):
        lists = [c for c, t in frame.schema.items() if isinstance(t, pl.List)]
        frame.with_columns(pl.col(c).list.join(" ").alias(c) for c in lists).write_csv(path)
    else:
        raise UsageError(f"{path}: use a .parquet, .csv or .jsonl file name")


@dataclass
class MiningResult:
    itemsets: pl.DataFrame
    baskets: int
    source: str

    def rules(self, min_confidence: float = 0.5) -> pl.DataFrame:
        return association_rules(self.itemsets, self.baskets, min_confidence)


def mine(source: object, *, by: str = "event_id", window: str | None = None, min_support: float = 0.01,
         max_len: int | None = None, mapping: dict[str, str] | None = None) -> MiningResult:
    """Frequent itemsets of a basket file (``.dat``, ``.dat.gz``), event files or an event frame."""
    baskets = load_baskets(source, by=by, window=window, mapping=mapping)
    return MiningResult(frequent_itemsets(baskets, min_support, max_len), baskets.count, baskets.source)


def load_baskets(source: object, *, by: str = "event_id", window: str | None = None,
                 mapping: dict[str, str] | None = None) -> Baskets:
    from .events import read_events

    paths = [source] if isinstance(source, str | Path) else source
    if isinstance(paths, list | tuple) and paths and all(
            isinstance(p, str | Path) and Path(p).name.lower().endswith((".dat", ".dat.gz")) for p in paths):
        if len(paths) != 1:
            raise UsageError("mine one basket file at a time")
        return read_basket_file(paths[0])
    events = read_events(source, mapping=mapping).events
    return baskets_from_events(events, by=by, window=window)
