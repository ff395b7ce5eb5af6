"""Keyed pseudonymisation of identifier columns (HMAC-SHA256): same input and key, same pseudonym.

The key comes from a file or an environment variable and is never written to the output.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import polars as pl

from .errors import UsageError
from .events import _read_file

KEY_VARIABLE = "ASSAY_PSEUDONYM_KEY"


def load_key(key_file: str | None) -> bytes:
    if key_file:
        data = Path(key_file).read_bytes().strip()
    else:
        data = os.environ.get(KEY_VARIABLE, "").encode()
    if len(data) < 16:
        raise UsageError(f"a pseudonymisation key of at least 16 bytes is needed: --key-file FILE or ${KEY_VARIABLE}")
    return data


def pseudonym(value: str, key: bytes) -> str:
    return "p_" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:24]


def pseudonymize(source: str | Path, target: str | Path, columns: list[str], key: bytes) -> int:
    frame = _read_file(Path(source))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(f"{source}: no column {missing[0]!r} (columns: {', '.join(frame.columns)})")
    out = frame.with_columns(
        pl.col(c).cast(pl.String).map_elements(lambda v: pseudonym(v, key), return_dtype=pl.String)
        for c in columns)
    target = Path(target)
    name = target.name.lower()
    if name.endswith(".parquet"):
        out.write_parquet(target)
    elif name.endswith(".csv"):
        out.write_csv(target)
    elif name.endswith(".jsonl"):
        out.write_ndjson(target)
    else:
        raise UsageError(f"{target}: use a .csv, .jsonl or .parquet file name")
    return out.height
