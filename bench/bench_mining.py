"""Mining benchmark: assay vs pyfim (C, the speed reference) vs mlxtend, side by side.

    python bench/bench_mining.py [--skip-mlxtend]

FIMI retail at 0.1% and 0.02% support, T10I4D100K at 0.5% and 0.1%. Each tool mines in
its own process (so that peak memory is its own); times are of the mining call on baskets
already in memory, returning the tool's own result (best of 3; mlxtend once), and every
tool must find the same itemsets and supports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("ASSAY_SHARED", HERE.parent.parent / "shared")) / "data" / "fimi"
CASES = [("retail.dat.gz", 0.001), ("retail.dat.gz", 0.0002), ("T10I4D100K.dat.gz", 0.005),
         ("T10I4D100K.dat.gz", 0.001)]

WORKER = r'''
import gzip, json, math, resource, sys, time
tool, path, support = sys.argv[1], sys.argv[2], float(sys.argv[3])
lines = [l.split() for l in gzip.open(path, "rt").read().splitlines()]
n = len(lines)
count = max(1, math.ceil(support * n - 1e-9))
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20
if tool == "assay":
    from assay.mining import baskets_from_lists, frequent_itemsets
    frequent_itemsets(baskets_from_lists([["a", "b"], ["a"]]), 1)  # load the compiled kernels
    baskets = baskets_from_lists(lines)
    base = resident_mb()
    frequent_itemsets(baskets, count)
    def run():
        return frequent_itemsets(baskets, count)
    def as_dict(f):
        return {frozenset(i): c for i, c in zip(f["items"].to_list(), f["count"].to_list())}
elif tool == "pyfim":
    import fim
    def run():
        return fim.fpgrowth(lines, supp=-count, zmin=1, report="a")
    def as_dict(f):
        return {frozenset(i): c for i, c in f}
else:
    import pandas as pd
    from mlxtend.frequent_patterns import fpgrowth
    from mlxtend.preprocessing import TransactionEncoder
    enc = TransactionEncoder()
    frame = pd.DataFrame.sparse.from_spmatrix(enc.fit(lines).transform(lines, sparse=True), columns=enc.columns_)
    def run():
        return fpgrowth(frame, min_support=count / n, use_colnames=True)
    def as_dict(f):
        return {frozenset(i): round(s * n) for i, s in zip(f["itemsets"], f["support"])}
# each tool's own result is timed; turning it into one comparable form is not
if tool != "assay":
    base = resident_mb()
best, result = None, None
for _ in range(1 if tool == "mlxtend" else 3):
    t = time.perf_counter()
    result = run()
    took = time.perf_counter() - t
    best = took if best is None else min(best, took)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the comparable form
found = as_dict(result)
import hashlib
digest = hashlib.sha256(json.dumps(sorted((sorted(k), v) for k, v in found.items())).encode()).hexdigest()
print(json.dumps({"seconds": best, "itemsets": len(found), "peak_mb": peak, "base_mb": base,
                  "digest": digest}))
'''


def measure(tool: str, path: Path, support: float) -> dict:
    out = subprocess.run([sys.executable, "-c", WORKER, tool, str(path), str(support)], capture_output=True,
                         text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{tool} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-mlxtend", action="store_true")
    args = parser.parse_args()
    tools = ["assay", "pyfim"] + ([] if args.skip_mlxtend else ["mlxtend"])
    print(f"{'data':<20}{'support':>9}{'itemsets':>10}" + "".join(f"{t + ' s':>11}{t + ' MB':>11}{'+mining':>9}" for t in tools)
          + f"{'vs pyfim':>10}{'vs mlxtend':>12}  same")
    ok = True
    for name, support in CASES:
        results = {t: measure(t, DATA / name, support) for t in tools}
        same = len({r["digest"] for r in results.values()}) == 1
        ok &= same
        a = results["assay"]["seconds"]
        line = f"{name:<20}{support:>9.4%}{results['assay']['itemsets']:>10,}"
        line += "".join(f"{results[t]['seconds']:>11.3f}{results[t]['peak_mb']:>11,.0f}"
                        f"{max(0, results[t]['peak_mb'] - results[t]['base_mb']):>9,.0f}" for t in tools)
        line += f"{a / results['pyfim']['seconds']:>9.2f}x"
        line += f"{results['mlxtend']['seconds'] / a:>11.0f}x" if "mlxtend" in results else f"{'-':>12}"
        print(line + f"  {'yes' if same else 'NO'}")
    print("\nvs pyfim: assay's time / pyfim's (goal <= 1.5); vs mlxtend: how many times faster (goal >= 20)")
    print("MB: peak resident memory of the process; +mining: peak above the resident memory once the\n"
          "baskets are loaded and the tool imported (with its compiled code), i.e. what mining itself needs")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
