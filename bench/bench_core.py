"""Core benchmark: assay vs hand-written DuckDB SQL, side by side in one run.

    python bench/bench_core.py                 # 10 M rows, all cases
    python bench/bench_core.py --rows 1000000 --cases a,c
    python bench/bench_core.py --cases b --skip-duckdb --repeat 5

Generates (once, cached under bench/data/) ROWS purchases as Parquet: 1 M entities with
heavy-tailed activity, 500 items with skewed popularity, 30 days in time order, 3,000
counterparties. Times each case as whole processes (start-up, reading Parquet, writing
alerts), checks that both sides give the same alerts, prints rows/s, the ratio and peak memory.
Before timing, it compiles assay's bytecode (as pip does when it installs a package) and
runs each case once untimed (Numba's cache, the page cache).

Cases: (a) one three-item combination, 72h; (b) 1,000 combinations of 2-4 items, 72h;
(c) five aggregates: count with a where, sum(amount) 1d, distinct(counterparty) 1d,
a 7d structuring count, distinct(entity) keyed by counterparty over 1h.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

import assay

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
START = 1_767_225_600  # 2026-01-01T00:00:00Z


def generate(rows: int, seed: int = 42) -> Path:
    path = DATA / f"events_{rows}_{seed}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entities = max(rows // 10, 10)
    weight = rng.lognormal(0.0, 1.2, entities)
    entity = rng.choice(entities, rows, p=weight / weight.sum())
    item_p = 1.0 / np.arange(1, 501) ** 1.0
    item = rng.choice(500, rows, p=item_p / item_p.sum())
    cp_p = 1.0 / np.arange(1, 3001) ** 0.8
    counterparty = rng.choice(3000, rows, p=cp_p / cp_p.sum())
    ts = np.sort(rng.integers(START, START + 30 * 86400, rows))
    amount = np.round(rng.lognormal(3.5, 1.2, rows), 2)
    under = rng.random(rows) < 0.0005
    amount[under] = np.round(rng.uniform(9000, 9999.99, under.sum()), 2)
    frame = pl.DataFrame({
        "event_id": pl.int_range(rows, eager=True).cast(pl.String).str.replace(r"^", "t"),
        "entity": pl.Series(entity).cast(pl.String).str.replace(r"^", "c"),
        "ts": pl.from_epoch(pl.Series(ts), time_unit="s").dt.replace_time_zone("UTC"),
        "item": pl.Series(item).cast(pl.String).str.replace(r"^", "i"),
        "amount": amount,
        "counterparty": pl.Series(counterparty).cast(pl.String).str.replace(r"^", "m"),
    })
    frame.write_parquet(path, row_group_size=1_000_000)
    return path


def cases(seed: int = 7) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    combos = []
    for k in range(1000):
        size = int(rng.integers(2, 5))
        items = [f"i{x}" for x in rng.choice(500, size, replace=False)]
        combos.append({"id": f"combo-{k:04d}", "items": items, "window_s": 72 * 3600, "min_distinct": size})
    aggregates = [
        {"id": "many-large", "metric": "count", "op": ">=", "threshold": 5, "window_s": 86400,
         "key": "entity", "where": "amount > 500", "where_sql": "amount > 500"},
        {"id": "spend-1d", "metric": "sum", "column": "amount", "op": ">", "threshold": 5000,
         "window_s": 86400, "key": "entity"},
        {"id": "counterparties-1d", "metric": "distinct", "column": "counterparty", "op": ">=",
         "threshold": 6, "window_s": 86400, "key": "entity"},
        {"id": "structuring-7d", "metric": "count", "op": ">=", "threshold": 2, "window_s": 7 * 86400,
         "key": "entity", "where": "amount >= 9000 and amount < 10000",
         "where_sql": "amount >= 9000 AND amount < 10000"},
        {"id": "fan-in-1h", "metric": "distinct", "column": "entity", "op": ">=", "threshold": 150,
         "window_s": 3600, "key": "counterparty"},
    ]
    return {
        "a": {"kind": "combination", "scenarios": [{"id": "trio", "items": ["i20", "i45", "i70"],
                                                    "window_s": 72 * 3600, "min_distinct": 3}]},
        "b": {"kind": "combination", "scenarios": combos},
        "c": {"kind": "aggregate", "scenarios": aggregates},
    }


def to_yaml(case: dict) -> str:
    lines = ["version: 1", "purpose: bench", "scenarios:"]
    for s in case["scenarios"]:
        lines.append(f"  - id: {s['id']}")
        lines.append(f"    window: {s['window_s']}s")
        if case["kind"] == "combination":
            lines.append("    kind: combination")
            lines.append(f"    items: [{', '.join(s['items'])}]")
        else:
            metric = s["metric"] if s["metric"] == "count" else f"{s['metric']}({s['column']})"
            lines += ["    kind: aggregate", f"    metric: {metric}", f"    op: '{s['op']}'",
                      f"    threshold: {s['threshold']}", f"    key: {s['key']}"]
            if s.get("where"):
                lines.append(f"    where: \"{s['where']}\"")
    return "\n".join(lines) + "\n"


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one whole process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{stderr}")
    return seconds, usage.ru_maxrss / 1024


def compare(case: dict, assay_out: Path, duck_out: Path) -> tuple[int, int, bool]:
    ids = [s["id"] for s in case["scenarios"]]
    a = pl.read_parquet(assay_out).select("scenario", "key", "trigger_event_id", "value")
    d = pl.read_parquet(duck_out).with_columns(
        pl.col("scenario").map_elements(lambda i: ids[i], return_dtype=pl.String)).select(
        "scenario", "key", "trigger_event_id", "value")
    key = ["scenario", "key", "trigger_event_id"]
    a, d = a.sort(key), d.sort(key)
    same = a.height == d.height and a.select(key).equals(d.select(key)) and \
        bool(((a["value"] - d["value"]).abs() < 1e-6).all())
    return a.height, d.height, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--cases", default="a,b,c")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="time assay N times per case and report the median (timings here vary "
                             "by a fifth from one run to the next); DuckDB runs once")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        generate(args.rows)
        return
    t = time.perf_counter()
    # generated in a process of its own: a child's peak memory as the kernel reports it
    # (ru_maxrss) includes what its parent held when it forked (1.5 GB after generating)
    subprocess.run([sys.executable, __file__, "--generate-only", "--rows", str(args.rows)], check=True)
    events = generate(args.rows)
    print(f"events: {events} ({args.rows:,} rows; ready in {time.perf_counter() - t:.1f} s)")
    all_cases = cases()
    # assay's bytecode as pip writes it when it installs a package: with an editable install and
    # PYTHONDONTWRITEBYTECODE=1 (set on this machine), every run would compile assay's modules
    # again (0.1-0.25 s of a run's start-up)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(assay.__file__).parent)], check=True)
    # warm the numba cache so that no case pays for compilation
    subprocess.run([sys.executable, "-m", "assay.cli", "check", "/dev/null"], capture_output=True)
    rows = []
    for name in args.cases.split(","):
        case = all_cases[name]
        scen = DATA / f"case_{name}.yaml"
        scen.write_text(to_yaml(case))
        spec = DATA / f"case_{name}.json"
        spec.write_text(json.dumps(case))
        a_out, d_out = DATA / f"alerts_{name}_assay.parquet", DATA / f"alerts_{name}_duckdb.parquet"
        measure([sys.executable, "-m", "assay.cli", "run", str(scen), str(events), "--quiet",
                 "--out", str(a_out)])  # warm-up: numba cache, page cache
        timed = [measure([sys.executable, "-m", "assay.cli", "run", str(scen), str(events), "--quiet",
                          "--out", str(a_out)]) for _ in range(max(args.repeat, 1))]
        a_s = float(np.median([t for t, _ in timed]))
        a_mb = max(mb for _, mb in timed)
        if len(timed) > 1:
            print(f"({name}) assay runs: {', '.join(f'{t:.2f}' for t, _ in timed)} s (median {a_s:.2f})")
        if args.skip_duckdb:
            rows.append((name, a_s, a_mb, None, None, None))
            print(f"({name}) assay {a_s:.2f} s, {args.rows / a_s / 1e6:.2f} M rows/s, {a_mb:,.0f} MB")
            continue
        d_s, d_mb = measure([sys.executable, str(HERE / "duckdb_rules.py"), name, str(events), str(spec),
                             str(d_out)])
        n_a, n_d, same = compare(case, a_out, d_out)
        rows.append((name, a_s, a_mb, d_s, d_mb, (n_a, n_d, same)))
        print(f"({name}) assay {a_s:.2f} s, duckdb {d_s:.2f} s, alerts {n_a:,} / {n_d:,}, "
              f"{'same alerts' if same else 'ALERTS DIFFER'}")
    print()
    print(f"{'case':<6}{'assay s':>9}{'M rows/s':>10}{'peak MB':>9}{'duckdb s':>10}{'M rows/s':>10}"
          f"{'peak MB':>9}{'speed-up':>10}  alerts")
    for name, a_s, a_mb, d_s, d_mb, cmp in rows:
        duck = f"{d_s:>10.2f}{args.rows / d_s / 1e6:>10.2f}{d_mb:>9,.0f}{d_s / a_s:>9.1f}x" if d_s else \
            f"{'-':>10}{'-':>10}{'-':>9}{'-':>10}"
        agree = "" if cmp is None else f"  {cmp[0]:,} {'= duckdb' if cmp[2] else '!= duckdb ' + str(cmp[1])}"
        print(f"({name}){'':<3}{a_s:>9.2f}{args.rows / a_s / 1e6:>10.2f}{a_mb:>9,.0f}{duck}{agree}")
    if any(cmp is not None and not cmp[2] for *_, cmp in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
