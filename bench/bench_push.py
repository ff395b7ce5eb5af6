"""Micro-batch cost: one engine fed by ``Engine.push``, side by side with a batch run.

    python bench/bench_push.py [--sizes 100,1000,4000] [--warm 200000] [--pushes 30] [--partitions 1]
    python bench/bench_push.py --warm 1000000 --sizes 2500 --pushes 400   # the p99 of a stream's pushes

The stream benchmark's entity scenarios (the core benchmark's 1,000-combination pack and
four entity aggregates) on the core benchmark's events: the engine first takes --warm rows
(so that it carries a realistic state), then --pushes micro-batches of each size are timed.
Prints milliseconds per push (the mean, and the 99th percentile and the slowest push, which
a stream's p99 latency feels: a push that does some amortized work, a merge or a copy,
holds up the rows behind it), the rows/s that gives, and the batch engine's rows/s over
the same rows (``assay.run``) for comparison. After the pushes, the time a checkpoint's
capture holds the engine up (``Engine.capture``, a delta of every push since the warm-up).
``--partitions P``: rows go to P partitions by entity (as ``assay publish`` sends them) and
each push carries every partition's share (``Engine.push_many``, as a worker pushes what its
partitions fetched).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import assay  # noqa: E402
from assay.engine import Engine  # noqa: E402
from assay.scenarios import load_scenarios  # noqa: E402
from assay.streaming.wire import partitions_of  # noqa: E402
from bench_core import generate  # noqa: E402
from bench_stream import scenario_files  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,4000")
    parser.add_argument("--warm", type=int, default=200_000)
    parser.add_argument("--pushes", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="assay-bench-push-"))
    entity_yaml, _ = scenario_files(folder)
    spec = load_scenarios(entity_yaml)
    need = args.warm + args.pushes * max(sizes)
    events = assay.read_events(pl.read_parquet(generate(10_000_000), n_rows=need)).events
    partition = pl.Series("_p", partitions_of(events["entity"], args.partitions))

    def split(start: int, size: int) -> dict[int, pl.DataFrame]:
        rows, parts = events.slice(start, size), partition.slice(start, size)
        return {p: rows.filter(parts == p) for p in range(args.partitions)}
    print(f"{'rows/push':>10}{'ms/push':>10}{'p99 ms':>9}{'max ms':>9}{'rows/s':>12}{'batch rows/s':>14}"
          f"{'batch / push':>14}{'capture ms':>12}")
    for size in sizes:
        engine = Engine(spec)
        for start in range(0, args.warm, 20_000):
            engine.push_many(split(start, min(20_000, args.warm - start)))
        for number in range(args.partitions):  # deltas follow a full capture
            engine.capture(False, number)
        engine.push_many(split(args.warm, size))  # the first small push builds the key indexes
        fed = events.slice(args.warm + size, args.pushes * size)
        batches = [split(args.warm + (k + 1) * size, size) for k in range(args.pushes)]
        times = []
        for batch in batches:
            started = time.perf_counter()
            engine.push_many(batch)
            times.append(time.perf_counter() - started)
        took = float(np.mean(times))
        started = time.perf_counter()
        for number in range(args.partitions):
            engine.capture(True, number)
        capture = time.perf_counter() - started
        t = time.perf_counter()
        assay.run(spec, fed)
        batch = fed.height / (time.perf_counter() - t)
        print(f"{size:>10,}{took * 1000:>10.1f}{np.percentile(times, 99) * 1000:>9.1f}{max(times) * 1000:>9.1f}"
              f"{size / took:>12,.0f}{batch:>14,.0f}{batch / (size / took):>13.1f}x{capture * 1000:>12.1f}")


if __name__ == "__main__":
    main()
