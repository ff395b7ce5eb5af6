"""The bench scenarios as hand-written DuckDB SQL with window functions (same alerts as assay).

Run as a whole process, like `assay run`: python bench/duckdb_rules.py CASE EVENTS.parquet SCENARIOS.json OUT.parquet

SPEC's window holds rows j <= i (canonical order) with t_j >= t_i - window. With the file
in canonical order, seq (file row number) is the canonical rank, and o = ts*K + seq
(K > row count) is unique and ordered; then a RANGE frame of window*K + K - 1
preceding holds exactly the window, even among rows sharing a timestamp.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

K = 1 << 24  # > number of rows


def _base(path: str, where: str = "TRUE") -> str:
    return (f"SELECT file_row_number AS seq, entity, counterparty, event_id, item, "
            f"amount::DECIMAL(18,2) AS amount, epoch(ts)::BIGINT AS t, "
            f"epoch(ts)::BIGINT * {K} + file_row_number AS o "
            f"FROM read_parquet('{path}', file_row_number=true) WHERE {where}")


def combination_sql(path: str, combos: list[dict]) -> str:
    """One max() window per item slot over rows expanded to the combinations they belong to."""
    pairs = ", ".join(f"({c_i}, '{item}', {slot}, {c['window_s']}, {c['min_distinct']})"
                      for c_i, c in enumerate(combos) for slot, item in enumerate(c["items"]))
    items = ", ".join(sorted({f"'{i}'" for c in combos for i in c["items"]}))
    slots = max(len(c["items"]) for c in combos)
    lasts = ",\n".join(f"max(CASE WHEN slot = {s} THEN t END) OVER w AS last{s}" for s in range(slots))
    hits = " + ".join(f"coalesce((last{s} >= t - window_s)::INT, 0)" for s in range(slots))
    return f"""
    WITH combos(combo, item, slot, window_s, min_distinct) AS (VALUES {pairs}),
    rel AS ({_base(path, f"item IN ({items})")}),
    x AS (SELECT rel.*, combo, slot, window_s, min_distinct FROM rel JOIN combos USING (item)),
    l AS (SELECT combo, entity, seq, event_id, t, window_s, min_distinct, {lasts}
          FROM x WINDOW w AS (PARTITION BY combo, entity ORDER BY seq
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)),
    v AS (SELECT *, {hits} AS value FROM l),
    c AS (SELECT *, value >= min_distinct AS cond,
                 lag(value >= min_distinct) OVER (PARTITION BY combo, entity ORDER BY seq) AS prev FROM v)
    SELECT combo AS scenario, entity AS key, event_id AS trigger_event_id, value::DOUBLE AS value
    FROM c WHERE cond AND (prev IS NULL OR NOT prev)
    """


def aggregate_sql(path: str, s: dict, index: int) -> str:
    metric = {"count": "count(*)", "sum": "sum(amount)"}.get(s["metric"])
    if s["metric"] == "distinct":
        metric = f"count(DISTINCT {s['column']})"
    frame = s["window_s"] * K + K - 1
    return f"""
    SELECT {index} AS scenario, key, event_id AS trigger_event_id, value::DOUBLE AS value FROM (
      SELECT *, lag(cond) OVER (PARTITION BY key ORDER BY o) AS prev FROM (
        SELECT key, o, event_id, value, value {s['op']} {s['threshold']} AS cond FROM (
          SELECT {s['key']} AS key, o, event_id,
                 {metric} OVER (PARTITION BY {s['key']} ORDER BY o
                                RANGE BETWEEN {frame} PRECEDING AND CURRENT ROW) AS value
          FROM ({_base(path, s.get('where_sql') or 'TRUE')}))))
    WHERE cond AND (prev IS NULL OR NOT prev)
    """


def main() -> None:
    case, path, spec_path, out = sys.argv[1:5]
    spec = json.loads(Path(spec_path).read_text())
    con = duckdb.connect()
    if spec["kind"] == "combination":
        sql = combination_sql(path, spec["scenarios"])
    else:
        sql = " UNION ALL ".join(aggregate_sql(path, s, i) for i, s in enumerate(spec["scenarios"]))
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")


if __name__ == "__main__":
    main()
