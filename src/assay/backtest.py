"""Backtests: how scenarios would have done on labelled history, and what they would cost.

Figures are per key (an alerted key is a lead for one review): a key is a true
positive when it raised at least one alert and is labelled positive. Keys without a
label count as negatives by default (``unlabeled="negative"``: nobody found anything
there), or are left out of precision with ``unlabeled="exclude"``; the report says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import polars as pl

from .detectors import build_detectors
from .durations import format_duration, parse_duration
from .engine import Engine
from .errors import InputError, UsageError
from .scenarios import Scenario, ScenarioFile

MONTH_S = 30.4375 * 86400
POSITIVE = {"1", "true", "yes", "y", "t", "positive", "fraud", "sar"}
NEGATIVE = {"0", "false", "no", "n", "f", "negative", "legit", "normal"}


@dataclass
class Labels:
    frame: pl.DataFrame  # key (str), label (bool), label_ts (datetime, optional)
    source: str = "<labels>"

    @property
    def positives(self) -> set[str]:
        return set(self.frame.filter(pl.col("label"))["key"].to_list())

    @property
    def labelled(self) -> set[str]:
        return set(self.frame["key"].to_list())


def load_labels(source: str | Path | pl.DataFrame) -> Labels:
    """``key,label`` (and optionally ``label_ts``); label 1/0, true/false, yes/no."""
    name = "<labels>" if isinstance(source, pl.DataFrame) else str(source)
    if isinstance(source, pl.DataFrame):
        frame = source
    else:
        path = Path(source)
        if not path.exists():
            raise UsageError(f"{path}: no such file")
        frame = pl.read_csv(path, infer_schema=False)
    for col in ("key", "label"):
        if col not in frame.columns:
            raise InputError(name, None, col, "-", f"a labels file needs columns key,label "
                                                   f"(found: {', '.join(frame.columns)})")
    text = frame["label"].cast(pl.String).str.strip_chars().str.to_lowercase()
    known = text.is_in(list(POSITIVE | NEGATIVE))
    if not known.all():
        row = int(known.arg_min()) + 1  # type: ignore[operator]
        raise InputError(name, row, "label", frame["label"][row - 1],
                         "expected 1/0, true/false or yes/no")
    out = pl.DataFrame({"key": frame["key"].cast(pl.String).str.strip_chars(),
                        "label": text.is_in(list(POSITIVE))})
    if "label_ts" in frame.columns:
        from .events import _to_timestamp

        out = out.with_columns(_to_timestamp(frame["label_ts"]).alias("label_ts"))
    duplicated = out["key"].is_duplicated()
    if duplicated.any():
        row = int(duplicated.arg_max()) + 1  # type: ignore[operator]
        raise InputError(name, row, "key", out["key"][row - 1], "the key is labelled twice")
    return Labels(out, name)


@dataclass
class Figures:
    scenario: str
    alerts: int
    alerted_keys: int
    keys: int
    positives: int
    true_positives: int
    false_positives: int
    false_negatives: int
    unlabeled_alerted_keys: int
    false_alerts: int
    months: float
    precision: float | None
    recall: float | None
    f1: float | None
    alerts_per_10k_keys_per_month: float | None
    median_hours_to_alert: float | None
    median_hours_after_label: float | None = None
    projection: dict[str, float | int] | None = None
    false_positive_keys: list[str] = field(default_factory=list)  # the first 50, for review
    missed_keys: list[str] = field(default_factory=list)  # the first 50

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class BacktestResult:
    purpose: str
    unlabeled: str
    figures: list[Figures]
    overall: Figures
    alerts: pl.DataFrame
    population: int | None = None
    sweep: dict[str, object] | None = None
    baseline: dict[str, object] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "purpose": self.purpose,
            "unlabeled_keys": self.unlabeled,
            "population": self.population,
            "scenarios": [f.as_dict() for f in self.figures],
            "overall": self.overall.as_dict(),
            "sweep": self.sweep,
            "baseline": self.baseline,
            "notes": self.notes,
        }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def poisson_interval(count: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval for a Poisson mean from one observed count.

    lower = Gamma(count).ppf(a/2), upper = Gamma(count + 1).ppf(1 - a/2), by bisection on
    the Gamma CDF (a Poisson tail sum); above 1,000 the Wilson-Hilferty form is exact enough.
    """
    alpha = 1 - level
    lower = 0.0 if count == 0 else _gamma_ppf(alpha / 2, count)
    return lower, _gamma_ppf(1 - alpha / 2, count + 1)


def _gamma_cdf(x: float, shape: int) -> float:
    """P(Gamma(shape, 1) <= x) = P(Poisson(x) >= shape), for a whole-number shape."""
    term = math.exp(-x)
    total = term
    for i in range(1, shape):
        term *= x / i
        total += term
    return 1.0 - total


def _gamma_ppf(p: float, shape: int) -> float:
    if shape > 1000:
        z = _normal_quantile(p)
        return shape * (1 - 1 / (9 * shape) + z / (3 * math.sqrt(shape))) ** 3
    lo, hi = 0.0, shape + 20.0 * math.sqrt(shape) + 20.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if _gamma_cdf(mid, shape) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _normal_quantile(p: float) -> float:
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def figures_for(scenario_ids: list[str], alerts: pl.DataFrame, key_space: set[str], labels: Labels,
                months: float, first_seen: dict[str, object], unlabeled: str, name: str,
                population: int | None) -> Figures:
    mine = alerts.filter(pl.col("scenario").is_in(scenario_ids))
    alerted = set(mine["key"].to_list())
    positives = labels.positives & key_space
    labelled = labels.labelled
    tp = alerted & positives
    unlabeled_alerted = alerted - labelled
    negatives_alerted = (alerted - positives) if unlabeled == "negative" else (alerted & labelled) - positives
    fn = positives - alerted
    precision = _ratio(len(tp), len(tp) + len(negatives_alerted))
    recall = _ratio(len(tp), len(positives))
    f1 = None if not precision or not recall else 2 * precision * recall / (precision + recall)
    false_alerts = int(mine.filter(~pl.col("key").is_in(list(positives))).height)
    per_10k = None
    if key_space and months > 0:
        per_10k = mine.height / len(key_space) * 10_000 / months
    delays = []
    after_label = []
    label_ts = dict(zip(labels.frame["key"], labels.frame["label_ts"], strict=True)) \
        if "label_ts" in labels.frame.columns else {}
    if tp:
        first_alert = mine.filter(pl.col("key").is_in(list(tp))).group_by("key").agg(pl.col("ts").min())
        for key, ts in first_alert.iter_rows():
            if key in first_seen:
                delays.append((ts - first_seen[key]).total_seconds() / 3600)
            if label_ts.get(key) is not None:
                after_label.append((ts - label_ts[key]).total_seconds() / 3600)
    projection = None
    if population and key_space and months > 0:
        rate = false_alerts / (len(key_space) * months)
        lo, hi = poisson_interval(false_alerts)
        scale = population / (len(key_space) * months)
        projection = {"population": population, "false_alerts_per_month": rate * population,
                      "low": lo * scale, "high": hi * scale}
    return Figures(
        scenario=name, alerts=mine.height, alerted_keys=len(alerted), keys=len(key_space),
        positives=len(positives), true_positives=len(tp), false_positives=len(negatives_alerted),
        false_negatives=len(fn), unlabeled_alerted_keys=len(unlabeled_alerted), false_alerts=false_alerts,
        months=months, precision=precision, recall=recall, f1=f1, alerts_per_10k_keys_per_month=per_10k,
        median_hours_to_alert=_median(delays), median_hours_after_label=_median(after_label),
        projection=projection, false_positive_keys=sorted(negatives_alerted)[:50],
        missed_keys=sorted(fn)[:50])


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def backtest(spec: ScenarioFile, events: pl.DataFrame, labels: Labels, *, unlabeled: str = "negative",
             population: int | None = None) -> BacktestResult:
    """Evaluate ``spec`` over canonical ``events`` and score its alerts against ``labels``."""
    if unlabeled not in ("negative", "exclude"):
        raise UsageError(f"unlabeled keys are counted as 'negative' or 'exclude'd, not {unlabeled!r}")
    alerts = Engine(spec).run_batch(events)
    span = events.select((pl.col("ts").max() - pl.col("ts").min()).dt.total_seconds()).item() or 0
    months = max(float(span), 86400.0) / MONTH_S  # at least a day, so rates stay finite
    figures = []
    spaces: dict[str, set[str]] = {}
    firsts: dict[str, dict[str, object]] = {}
    for s in spec.scenarios:
        space, first = _key_space(s, events)
        spaces[s.id], firsts[s.id] = space, first
        figures.append(figures_for([s.id], alerts, space, labels, months, first, unlabeled, s.id, population))
    union: set[str] = set().union(*spaces.values()) if spaces else set()
    first_all: dict[str, object] = {}
    for first in firsts.values():
        for k, v in first.items():
            if k not in first_all or v < first_all[k]:  # type: ignore[operator]
                first_all[k] = v
    overall = figures_for([s.id for s in spec.scenarios], alerts, union, labels, months, first_all,
                          unlabeled, "all scenarios", population)
    notes = [f"keys without a label count as {'negatives' if unlabeled == 'negative' else 'neither'}: "
             f"{sum(f.unlabeled_alerted_keys for f in figures)} alerted key(s) had no label"]
    return BacktestResult(spec.purpose, unlabeled, figures, overall, alerts, population, notes=notes)


def _key_space(s: Scenario, events: pl.DataFrame) -> tuple[set[str], dict[str, object]]:
    """Keys that have relevant rows for the scenario, and each one's first relevant row time."""
    (det,) = build_detectors((s,))
    relevant = events.filter(det.relevance(events)).group_by(pl.col(s.key).cast(pl.String).alias("k")).agg(
        pl.col("ts").min())
    first = dict(zip(relevant["k"].to_list(), relevant["ts"].to_list(), strict=True))
    keys = set(events[s.key].drop_nulls().cast(pl.String).to_list()) if s.key in events.columns else set()
    return keys, first


def parse_sweep(text: str, spec: ScenarioFile) -> tuple[Scenario, str, list[object]]:
    """``scenario_id:threshold=lo:hi:step``, ``:min_distinct=lo:hi:step`` or ``:window=1h,6h,1d``."""
    sid, sep, rest = text.partition(":")
    name, eq, values = rest.partition("=")
    if not sep or not eq:
        raise UsageError(f"--sweep expects ID:threshold=LO:HI:STEP or ID:window=1h,2h,..., got {text!r}")
    match = [s for s in spec.scenarios if s.id == sid]
    if not match:
        raise UsageError(f"--sweep: no scenario '{sid}' in the file")
    scenario = match[0]
    if name == "window":
        points: list[object] = [parse_duration(v.strip()) for v in values.split(",")]
    elif name in ("threshold", "min_distinct"):
        if (name == "threshold") != (scenario.kind == "aggregate"):
            raise UsageError(f"--sweep: a {scenario.kind} scenario has no {name} to sweep")
        parts = values.split(":")
        if len(parts) != 3:
            raise UsageError(f"--sweep {name}=LO:HI:STEP, got {values!r}")
        lo, hi, step = (Decimal(p) for p in parts)
        if step <= 0 or hi < lo:
            raise UsageError("--sweep needs LO <= HI and a positive STEP")
        points = []
        value = lo
        while value <= hi and len(points) < 200:
            points.append(value)
            value += step
    else:
        raise UsageError(f"--sweep can vary threshold, min_distinct or window, not {name!r}")
    return scenario, name, points


def sweep(spec: ScenarioFile, events: pl.DataFrame, labels: Labels, text: str, *,
          unlabeled: str = "negative") -> dict[str, object]:
    scenario, name, points = parse_sweep(text, spec)
    rows = []
    for value in points:
        if name == "window":
            variant = replace(scenario, window_us=int(value))  # type: ignore[arg-type]
            shown: object = format_duration(int(value))  # type: ignore[arg-type]
        elif name == "min_distinct":
            variant = replace(scenario, min_distinct=min(int(value), len(scenario.items)))  # type: ignore[arg-type]
            shown = int(value)  # type: ignore[arg-type]
        else:
            variant = replace(scenario, threshold=Decimal(value))  # type: ignore[arg-type]
            shown = float(value)  # type: ignore[arg-type]
        result = backtest(ScenarioFile(spec.purpose, (variant,)), events, labels, unlabeled=unlabeled)
        f = result.figures[0]
        rows.append({"value": shown, "alerts": f.alerts, "alerted_keys": f.alerted_keys,
                     "precision": f.precision, "recall": f.recall, "f1": f.f1,
                     "alerts_per_10k_keys_per_month": f.alerts_per_10k_keys_per_month})
    return {"scenario": scenario.id, "parameter": name, "points": rows}


def compare(current: BacktestResult, baseline: BacktestResult) -> dict[str, object]:
    """What changes from ``baseline`` to ``current``: alerts that appear and disappear, figure moves."""
    def ids(frame: pl.DataFrame) -> set[tuple[str, str, str]]:
        return set(frame.select("scenario", "key", "trigger_event_id").iter_rows())

    now, before = ids(current.alerts), ids(baseline.alerts)
    appear = sorted(now - before)
    disappear = sorted(before - now)
    moves = []
    old = {f.scenario: f for f in baseline.figures}
    for f in [*current.figures, current.overall]:
        b = old.get(f.scenario) if f is not current.overall else baseline.overall
        if b is None:
            moves.append({"scenario": f.scenario, "status": "new"})
            continue
        delta = {}
        for field_name in ("alerts", "alerted_keys", "true_positives", "false_positives", "precision",
                           "recall", "f1", "alerts_per_10k_keys_per_month"):
            a, c = getattr(b, field_name), getattr(f, field_name)
            delta[field_name] = {"before": a, "after": c,
                                 "change": None if a is None or c is None else c - a}
        moves.append({"scenario": f.scenario, "status": "changed", "figures": delta})
    for sid in old:
        if sid not in {f.scenario for f in current.figures}:
            moves.append({"scenario": sid, "status": "removed"})
    as_rows = [{"scenario": s, "key": k, "trigger_event_id": e} for s, k, e in appear]
    gone = [{"scenario": s, "key": k, "trigger_event_id": e} for s, k, e in disappear]
    return {"alerts_appear": len(appear), "alerts_disappear": len(disappear),
            "appear": as_rows[:1000], "disappear": gone[:1000], "scenarios": moves}


def projection_sentence(f: Figures) -> str:
    if not f.projection:
        return ""
    p = f.projection
    return (f"At {int(p['population']):,} keys, {f.scenario} would raise about "
            f"{p['false_alerts_per_month']:,.0f} false alerts a month "
            f"(95% interval {p['low']:,.0f} to {p['high']:,.0f}), from {f.false_alerts:,} false alert(s) "
            f"among {f.keys:,} keys over {f.months:.1f} month(s).")
