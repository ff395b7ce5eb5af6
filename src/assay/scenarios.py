"""Scenario files: YAML in, validated ``Scenario`` objects out.

Unknown fields are errors, so that a typo (``treshold``) cannot silently
disable a rule. Every error names the scenario id and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from . import where as where_lang
from .durations import format_duration, parse_duration
from .errors import ScenarioError, WhereSyntaxError

SEVERITIES = ("low", "medium", "high", "critical")
OPS = (">", ">=", "<", "<=", "==")
METRICS = ("count", "sum", "min", "max", "mean", "distinct")
PURPOSE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
# Purpose limitation (design rule): scenarios never read special-category data.
FORBIDDEN_COLUMN_WORDS = ("religio", "politic", "ethnic", "race", "sexual", "union_member",
                          "trade_union", "social_media", "health", "biometric")

# libyaml's safe loader parses a 1,000-scenario pack ~10x faster than the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

COMMON_FIELDS = {"id", "version", "kind", "window", "key", "where", "severity", "description"}
KIND_FIELDS = {
    "combination": {"items", "min_distinct"},
    "aggregate": {"metric", "op", "threshold"},
}
FILE_FIELDS = {"version", "purpose", "scenarios", "input", "description"}
INPUT_FIELDS = {"map"}


@dataclass(frozen=True)
class Metric:
    """``count``, ``sum(col)``, ``min(col)``, ``max(col)``, ``mean(col)`` or ``distinct(col)``."""

    name: str
    column: str | None = None

    def __str__(self) -> str:
        return self.name if self.column is None else f"{self.name}({self.column})"

    @classmethod
    def parse(cls, text: object) -> Metric:
        if not isinstance(text, str):
            raise ValueError(f"expected a metric like count or sum(amount), got {text!r}")
        m = re.fullmatch(r"\s*([a-z]+)\s*(?:\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\))?\s*", text)
        if not m or m.group(1) not in METRICS:
            raise ValueError(f"unknown metric {text!r}; use one of count, sum(col), min(col), "
                             "max(col), mean(col), distinct(col)")
        name, column = m.group(1), m.group(2)
        if name == "count" and column is not None:
            raise ValueError("count takes no column: write 'count'")
        if name != "count" and column is None:
            raise ValueError(f"{name} needs a column, e.g. {name}(amount)")
        return cls(name, column)


@dataclass(frozen=True)
class Scenario:
    """One detection rule. ``kind`` decides which of the kind-specific fields apply."""

    id: str
    kind: str
    window_us: int
    purpose: str
    severity: str = "medium"
    version: int = 1
    key: str = "entity"
    where: str | None = None
    description: str = ""
    items: tuple[str, ...] = ()
    min_distinct: int = 0
    metric: Metric | None = None
    op: str = ">="
    threshold: Decimal = Decimal(0)
    where_tree: Any = field(default=None, compare=False, repr=False)

    @property
    def window(self) -> str:
        return format_duration(self.window_us)

    @property
    def threshold_value(self) -> float:
        return float(self.min_distinct) if self.kind == "combination" else float(self.threshold)

    def columns(self) -> set[str]:
        """Event columns this scenario reads."""
        cols = {"event_id", "ts", self.key}
        if self.where_tree is not None:
            cols |= where_lang.columns(self.where_tree)
        if self.kind == "combination":
            cols.add("item")
        elif self.metric and self.metric.column:
            cols.add(self.metric.column)
        return cols

    def describe(self) -> str:
        scope = f"per {self.key}, within {self.window}"
        only = f", rows where {self.where}" if self.where else ""
        if self.kind == "combination":
            listed = ", ".join(self.items)
            need = "all of" if self.min_distinct == len(self.items) else f"at least {self.min_distinct} of"
            what = f"alert when {need} [{listed}] occur"
        else:
            what = f"alert when {self.metric} {self.op} {self.threshold}"
        return f"{what} {scope}{only} (severity {self.severity}; one alert per episode)"


@dataclass(frozen=True)
class ScenarioFile:
    purpose: str
    scenarios: tuple[Scenario, ...]
    mapping: dict[str, str] = field(default_factory=dict)
    source: str = "<scenarios>"
    version: int = 1


def load_scenarios(source: str | Path | ScenarioFile | Scenario | list[Scenario]) -> ScenarioFile:
    """Load from a path, a YAML string, a ScenarioFile, a Scenario or a list of them."""
    if isinstance(source, ScenarioFile):
        return source
    if isinstance(source, Scenario):
        source = [source]
    if isinstance(source, list):
        if not source or not all(isinstance(s, Scenario) for s in source):
            raise ScenarioError("expected a non-empty list of Scenario objects")
        purposes = {s.purpose for s in source}
        if len(purposes) != 1:
            raise ScenarioError("scenarios of different purposes cannot run together "
                                f"(found {', '.join(sorted(purposes))}): run one purpose at a time")
        _check_unique([s.id for s in source], "<scenarios>")
        return ScenarioFile(purposes.pop(), tuple(source))
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and source.strip().endswith((".yaml", ".yml"))):
        path = Path(source)
        if not path.exists():
            raise ScenarioError("no such file", source=str(path))
        return parse_scenarios(path.read_text(encoding="utf-8"), str(path))
    return parse_scenarios(str(source), "<scenarios>")


def parse_scenarios(text: str, source: str = "<scenarios>") -> ScenarioFile:
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, C when available
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ScenarioError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", source=source) from None
    if not isinstance(data, dict):
        raise ScenarioError("expected a mapping with version, purpose and scenarios", source=source)
    _unknown(data, FILE_FIELDS, source, "", "file")
    version = data.get("version", 1)
    if version != 1:
        raise ScenarioError(f"this engine implements semantics version 1, the file asks for {version!r}",
                            source=source, field="version")
    purpose = data.get("purpose")
    if not isinstance(purpose, str) or not PURPOSE_PATTERN.match(purpose):
        raise ScenarioError("every scenario file declares one purpose, a lower-case name such as "
                            f"fraud, aml or precursor-compliance; got {purpose!r}",
                            source=source, field="purpose")
    raw = data.get("scenarios")
    if not isinstance(raw, list) or not raw:
        raise ScenarioError("expected a non-empty list", source=source, field="scenarios")
    mapping = _input_mapping(data.get("input"), source)
    scenarios = tuple(build_scenario(entry, purpose, source, i) for i, entry in enumerate(raw))
    _check_unique([s.id for s in scenarios], source)
    return ScenarioFile(purpose, scenarios, mapping, source, version)


def _input_mapping(raw: object, source: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScenarioError("expected a mapping with 'map'", source=source, field="input")
    _unknown(raw, INPUT_FIELDS, source, "", "input")
    mapping = raw.get("map") or {}
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in mapping.items()):
        raise ScenarioError("expected canonical: source column pairs, e.g. entity: CustomerID",
                            source=source, field="input.map")
    return dict(mapping)


def _check_unique(ids: list[str], source: str) -> None:
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            raise ScenarioError("the id is used twice in one file", source=source, scenario=sid, field="id")
        seen.add(sid)


def _unknown(data: dict, allowed: set[str], source: str, sid: str, what: str) -> None:
    for key in data:
        if key not in allowed:
            hint = _close(str(key), allowed)
            raise ScenarioError(f"unknown field in {what}{hint}; allowed: {', '.join(sorted(allowed))}",
                                source=source, scenario=sid, field=str(key))


def _close(word: str, options: set[str]) -> str:
    import difflib

    match = difflib.get_close_matches(word, sorted(options), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def build_scenario(entry: object, purpose: str, source: str = "<scenarios>", index: int = 0) -> Scenario:
    """Validate one scenario mapping. Raises ScenarioError naming the id and field."""
    if not isinstance(entry, dict):
        raise ScenarioError(f"scenario #{index + 1} must be a mapping", source=source)
    sid = entry.get("id")
    if not isinstance(sid, str) or not ID_PATTERN.match(sid):
        raise ScenarioError(f"scenario #{index + 1} needs an id (letters, digits, '-', '_', '.', ':'); "
                            f"got {sid!r}", source=source, field="id")

    def fail(field_name: str, message: str) -> ScenarioError:
        return ScenarioError(message, source=source, scenario=sid, field=field_name)

    kind = entry.get("kind")
    if kind not in KIND_FIELDS:
        raise fail("kind", f"expected one of {', '.join(KIND_FIELDS)}, got {kind!r}")
    _unknown(entry, COMMON_FIELDS | KIND_FIELDS[kind], source, sid, f"a {kind} scenario")
    version = entry.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail("version", f"expected a positive integer, got {version!r}")
    if "window" not in entry:
        raise fail("window", "required (e.g. 72h)")
    try:
        window_us = parse_duration(entry["window"])
    except ValueError as exc:
        raise fail("window", str(exc)) from None
    key = entry.get("key", "entity")
    if not isinstance(key, str) or not key:
        raise fail("key", f"expected a column name, got {key!r}")
    severity = entry.get("severity", "medium")
    if severity not in SEVERITIES:
        raise fail("severity", f"expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "expected text")
    where_text = entry.get("where")
    tree = None
    if where_text is not None:
        if not isinstance(where_text, str):
            raise fail("where", f"expected an expression as text, got {where_text!r}")
        try:
            tree = where_lang.parse_where(where_text)
        except WhereSyntaxError as exc:
            raise fail("where", str(exc)) from None
    fields: dict[str, Any] = {}
    if kind == "combination":
        items = entry.get("items")
        if not isinstance(items, list) or not items:
            raise fail("items", "expected a non-empty list of items")
        items = [str(i) if isinstance(i, int | float) and not isinstance(i, bool) else i for i in items]
        if not all(isinstance(i, str) and i for i in items):
            raise fail("items", "every item must be a non-empty string")
        if len(set(items)) != len(items):
            raise fail("items", "an item is listed twice")
        min_distinct = entry.get("min_distinct", len(items))
        if isinstance(min_distinct, bool) or not isinstance(min_distinct, int) \
                or not 1 <= min_distinct <= len(items):
            raise fail("min_distinct", f"expected a whole number from 1 to {len(items)}, got {min_distinct!r}")
        fields.update(items=tuple(items), min_distinct=min_distinct, op=">=")
    else:
        for required in ("metric", "op", "threshold"):
            if required not in entry:
                raise fail(required, "required for an aggregate scenario")
        try:
            metric = Metric.parse(entry["metric"])
        except ValueError as exc:
            raise fail("metric", str(exc)) from None
        op = entry["op"]
        if op not in OPS:
            raise fail("op", f"expected one of {' '.join(OPS)}, got {op!r}")
        raw_threshold = entry["threshold"]
        if isinstance(raw_threshold, bool) or not isinstance(raw_threshold, int | float | str):
            raise fail("threshold", f"expected a number, got {raw_threshold!r}")
        try:
            threshold = Decimal(str(raw_threshold))
        except InvalidOperation:
            raise fail("threshold", f"expected a number, got {raw_threshold!r}") from None
        if not threshold.is_finite():
            raise fail("threshold", f"expected a finite number, got {raw_threshold!r}")
        fields.update(metric=metric, op=op, threshold=threshold)
    scenario = Scenario(id=sid, kind=kind, window_us=window_us, purpose=purpose, severity=severity,
                        version=version, key=key, where=where_text, description=description,
                        where_tree=tree, **fields)
    for column in sorted(scenario.columns()):
        lowered = column.lower()
        if any(word in lowered for word in FORBIDDEN_COLUMN_WORDS):
            raise fail("where" if column != key else "key",
                       f"reads column '{column}': scenarios may not use special-category data "
                       "(religion, politics, ethnicity, health, sexual orientation, union membership, "
                       "social media); see docs/purpose.md")
    return scenario
