"""Discriminative mining: the combinations over-represented among positive keys.

Candidates are the itemsets frequent among the baskets of positive keys; each is then
counted over every key (a key "has" an itemset when one of its baskets holds all of it),
giving its support among positives and negatives, its precision and recall as a rule, its
lift over the base rate and its odds ratio with a 95% confidence interval. The best can be
written out as ``combination`` scenarios that ``assay run`` accepts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from .backtest import Labels
from .durations import format_duration, parse_duration
from .errors import UsageError
from .keys import dense_codes
from .mining import Baskets, frequent_itemsets, min_count

Z95 = 1.959963984540054


def contrast(baskets: Baskets, labels: Labels, *, min_support: float = 0.05, max_len: int | None = 4,
             unlabeled: str = "negative", max_candidates: int = 20_000) -> pl.DataFrame:
    """One row per candidate itemset, best first (by the lower bound of the odds ratio)."""
    if baskets.keys is None:
        raise UsageError("discriminative mining needs baskets per key: use --by KEY (e.g. --by entity "
                         "--window 72h)")
    keys = baskets.keys.cast(pl.String)
    positives = labels.positives
    labelled = labels.labelled
    all_keys = set(keys.to_list())
    pos_keys = all_keys & positives
    neg_keys = (all_keys - positives) if unlabeled == "negative" else (all_keys & labelled) - positives
    if not pos_keys:
        raise UsageError("no labelled-positive key has baskets: nothing to contrast")
    is_pos_basket = keys.is_in(list(pos_keys)).to_numpy()
    pos_ids = np.flatnonzero(is_pos_basket)
    pos_pairs = baskets.pairs.filter(pl.col("basket").is_in(pos_ids))
    remap = np.full(baskets.count, -1, np.int64)
    remap[pos_ids] = np.arange(pos_ids.size)
    pos_baskets = Baskets(pos_pairs.with_columns(pl.Series("basket", remap[pos_pairs["basket"].to_numpy()])),
                          int(pos_ids.size))
    # support is a share of positive *keys*; a key holding an itemset has at least one basket
    # holding it, so mining the positive baskets at that many baskets misses no candidate
    need = min_count(min_support, len(pos_keys))
    candidates = frequent_itemsets(pos_baskets, need, max_len).head(max_candidates)
    # every basket holding an item, for counting candidates over all keys
    by_item = {item: np.sort(np.asarray(ids, dtype=np.int64)) for item, ids in
               baskets.pairs.group_by("item").agg("basket").iter_rows()}
    key_code, n_codes = dense_codes(keys)
    code_pos = np.zeros(max(n_codes, 1), np.bool_)
    code_neg = np.zeros_like(code_pos)
    code_pos[key_code[is_pos_basket]] = True
    code_neg[key_code[keys.is_in(list(neg_keys)).to_numpy()]] = True
    rows = []
    n_pos, n_neg = len(pos_keys), len(neg_keys)
    for items in candidates["items"].to_list():
        lists = sorted((by_item[i] for i in items), key=len)
        ids = lists[0]
        for other in lists[1:]:
            ids = np.intersect1d(ids, other, assume_unique=True)
        holders = np.unique(key_code[ids])
        a = int(code_pos[holders].sum())
        if a < need:
            continue
        b = int(code_neg[holders].sum())
        c, d = n_pos - a, n_neg - b
        precision = a / (a + b) if a + b else None
        base = n_pos / (n_pos + n_neg) if n_pos + n_neg else None
        # Haldane-Anscombe: add 1/2 to every cell so that empty cells keep a finite ratio
        ha, hb, hc, hd = a + 0.5, b + 0.5, c + 0.5, d + 0.5
        log_or = math.log(ha * hd / (hb * hc))
        se = math.sqrt(1 / ha + 1 / hb + 1 / hc + 1 / hd)
        rows.append({
            "items": items, "positive_keys": a, "negative_keys": b,
            "support_positive": a / n_pos if n_pos else None, "support_negative": b / n_neg if n_neg else None,
            "precision": precision, "recall": a / n_pos if n_pos else None,
            "lift": precision / base if precision is not None and base else None,
            "odds_ratio": math.exp(log_or), "odds_ratio_low": math.exp(log_or - Z95 * se),
            "odds_ratio_high": math.exp(log_or + Z95 * se),
        })
    schema = {"items": pl.List(pl.String), "positive_keys": pl.Int64, "negative_keys": pl.Int64,
              "support_positive": pl.Float64, "support_negative": pl.Float64, "precision": pl.Float64,
              "recall": pl.Float64, "lift": pl.Float64, "odds_ratio": pl.Float64,
              "odds_ratio_low": pl.Float64, "odds_ratio_high": pl.Float64}
    frame = pl.DataFrame(rows, schema=schema)
    return frame.sort(["odds_ratio_low", "precision", "positive_keys"], descending=True, nulls_last=True)


def suggest(found: pl.DataFrame, *, purpose: str, window: str, top: int = 10, key: str = "entity",
            path: str | Path | None = None) -> str:
    """The best itemsets as a scenario file of ``combination`` scenarios, figures as comments."""
    parse_duration(window)
    lines = ["# Suggested by assay mine --labels: combinations over-represented among positive keys.",
             "# Backtest before use (assay backtest); figures are from the mined history.",
             "version: 1", f"purpose: {purpose}", "scenarios:"]
    for k, row in enumerate(found.head(top).iter_rows(named=True), start=1):
        items = ", ".join(_quote(i) for i in row["items"])
        lines += [
            f"  # precision {_f(row['precision'])}, recall {_f(row['recall'])}, lift {_f(row['lift'])}; "
            f"odds ratio {_f(row['odds_ratio'])} (95% CI {_f(row['odds_ratio_low'])}-{_f(row['odds_ratio_high'])}); "
            f"{row['positive_keys']} positive and {row['negative_keys']} negative keys",
            f"  - id: mined-{k:02d}", "    kind: combination", f"    items: [{items}]",
            f"    window: {format_duration(parse_duration(window))}", f"    key: {key}", "    severity: medium",
        ]
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _quote(item: str) -> str:
    return "'" + item.replace("'", "''") + "'"
