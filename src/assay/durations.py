"""Window lengths such as ``90s``, ``15m``, ``72h``, ``7d``, held as integer microseconds."""

from __future__ import annotations

import re

US_PER_SECOND = 1_000_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: object, *, allow_zero: bool = False) -> int:
    """Return the duration in microseconds; raise ValueError with a readable reason."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"expected a duration like '90s', '15m', '72h' or '7d', got {text!r}")
    if isinstance(text, int):
        raise ValueError(f"a duration needs a unit (s, m, h, d, w): write '{text}s', not {text}")
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"expected a duration like '90s', '15m', '72h' or '7d', got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0 and not allow_zero:
        raise ValueError(f"a window must be longer than zero, got {text!r}")
    return amount * _UNITS[unit] * US_PER_SECOND


_WALL_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_WALL_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)\s*$")


def parse_seconds(text: str) -> float:
    """A wall-clock setting (``500ms``, ``0.3s``, ``2s``, ``5m``, ``1h``) in seconds; fractions allowed,
    unlike windows. Raise ValueError with a readable reason."""
    match = _WALL_PATTERN.match(text)
    if not match:
        raise ValueError(f"expected a duration like 500ms, 0.5s, 2s or 5m, got {text!r}")
    return float(match.group(1)) * _WALL_UNITS[match.group(2)]


def format_duration(us: int) -> str:
    seconds = us // US_PER_SECOND
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
