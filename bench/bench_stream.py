"""Streaming benchmark: assay stream on NATS JetStream, alerts into PostgreSQL.

    python bench/bench_stream.py                    # 2 M rows for throughput, 50k ev/s for latency
    python bench/bench_stream.py --rows 500000 --latency-seconds 10

Scenarios: the core benchmark's 1,000-combination pack and its five aggregates. Four
aggregates and the pack are keyed by entity and run in one worker on a stream partitioned
by entity; the fan-in aggregate is keyed by counterparty and runs in a second worker on the
same events partitioned by counterparty (SPEC: a key's rows must reach one engine). Both
workers are real processes (`assay stream`), the store is PostgreSQL. One partition per
stream by default, as docs/streaming.md advises (as many partitions as workers share a
stream: each partition a worker owns adds fixed costs to every micro-batch and multiplies
the messages); ``--partitions 8`` measures a worker that owns eight.

1. Throughput: the workers are started (and warm), then the events are published as fast
   as the publisher goes; the figure is rows / (time from the first publish until both
   workers' checkpoints cover every row), i.e. published, evaluated and alert stored.
2. Latency: events are published at a fixed rate (default 50,000 per second, 500-row
   messages); for each alert received on assay.alerts.bench, latency is the time since its
   trigger row's message was published. Prints p50, p99 and the maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import assay  # noqa: E402
from assay.streaming.publish import stream_name  # noqa: E402
from assay.streaming.wire import FORMAT, encode, partitions_of  # noqa: E402
from bench_core import cases, generate, to_yaml  # noqa: E402

NATS_URL = "nats://127.0.0.1:4222"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
PARTITIONS = 1
ENTITY_WORKERS = 1
FETCH = "1000"
CHECKPOINT = "10s"


def scenario_files(folder: Path) -> tuple[Path, Path]:
    c = cases()
    entity = {"kind": "combination", "scenarios": c["b"]["scenarios"]}
    aggregates = {"kind": "aggregate", "scenarios": [s for s in c["c"]["scenarios"] if s["key"] == "entity"]}
    fan_in = {"kind": "aggregate", "scenarios": [s for s in c["c"]["scenarios"] if s["key"] == "counterparty"]}
    entity_text = to_yaml(entity) + to_yaml(aggregates).split("scenarios:\n", 1)[1]
    (folder / "entity.yaml").write_text(entity_text)
    (folder / "counterparty.yaml").write_text(to_yaml(fan_in))
    return folder / "entity.yaml", folder / "counterparty.yaml"


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process so far, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nats_server_pid() -> int | None:
    found = subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


def new_database() -> str:
    import psycopg

    name = f"assay_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    from assay.store import open_store

    open_store(f"{PG}/{name}").engine.dispose()  # migrate once, before the workers start
    return f"{PG}/{name}"


def drop_database(url: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def checkpointed_rows(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT consumer, SUM(rows) FROM stream_checkpoints GROUP BY consumer"))
            return {consumer: int(total) for consumer, total in rows}
    finally:
        engine.dispose()


def start_workers(entity_yaml: Path, cp_yaml: Path, url: str, prefix: str, checkpoint: str) -> list[subprocess.Popen]:
    """The entity stream's partitions divided among ENTITY_WORKERS workers, and one for the fan-in."""
    exe = Path(sys.executable).parent / "assay"
    common = ["--nats", NATS_URL, "--store", url, "--fetch", FETCH, "--checkpoint-every", checkpoint]
    workers = []
    for ranks in np.array_split(np.arange(PARTITIONS), ENTITY_WORKERS):
        if ranks.size:
            workers.append(subprocess.Popen(
                [str(exe), "stream", str(entity_yaml), "--subject", f"{prefix}.entity", "--consumer", "entity",
                 "--partitions", f"{ranks[0]}-{ranks[-1]}", *common], stdout=subprocess.DEVNULL))
    workers.append(subprocess.Popen(
        [str(exe), "stream", str(cp_yaml), "--subject", f"{prefix}.cp", "--key", "counterparty", "--consumer", "cp",
         "--partitions", f"0-{PARTITIONS - 1}", *common], stdout=subprocess.DEVNULL))
    return workers


def messages(events: pl.DataFrame, batch: int) -> list[tuple[str, int, bytes, pl.Series]]:
    """(stream suffix, partition, encoded rows, their event ids) in arrival order: each row goes
    to both streams. Encoded beforehand: the publisher stands for other machines, and its work
    is not the workers' (on 2 shared cores it would slow them down)."""
    out = []
    by_entity = partitions_of(events["entity"], PARTITIONS)
    by_cp = partitions_of(events["counterparty"], PARTITIONS)
    for start in range(0, events.height, batch):
        chunk = events[start:start + batch]
        pe, pc = by_entity[start:start + batch], by_cp[start:start + batch]
        for p in range(PARTITIONS):
            mine = chunk.filter(pl.Series(pe == p))
            if mine.height:
                out.append(("entity", p, encode(mine), mine["event_id"]))
            mine = chunk.filter(pl.Series(pc == p))
            if mine.height:
                out.append(("cp", p, encode(mine), mine["event_id"]))
    return out


async def make_streams(js, prefix: str) -> None:  # type: ignore[no-untyped-def]
    for suffix in ("entity", "cp"):
        await js.add_stream(name=stream_name(f"{prefix}.{suffix}"), subjects=[f"{prefix}.{suffix}.>"])


async def delete_streams(prefix: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for suffix in ("entity", "cp"):
        await js.delete_stream(stream_name(f"{prefix}.{suffix}"))
    # the run's alerts were received or counted in the store; they need not stay on the stream
    await js.purge_stream("ASSAY_ALERTS", subject="assay.alerts.bench")
    await nc.close()


async def publish(prefix: str, msgs: list[tuple[str, int, bytes, pl.Series]], rate: float | None,
                  batch: int, sent_at: list[float] | None = None) -> float:
    """Publish in order; with ``rate`` (rows/s) paced per source batch. Returns the first publish
    time; ``sent_at`` gets each message's publish time."""
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    first = time.perf_counter()
    pending = []
    rows_sent = 0
    for suffix, p, data, ids in msgs:
        if rate is not None and suffix == "entity":
            due = first + rows_sent / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            rows_sent += ids.len()
        if sent_at is not None:
            sent_at.append(time.perf_counter())
        pending.append(await js.publish_async(f"{prefix}.{suffix}.{p}", data, headers={
            "assay-format": FORMAT, "assay-key": "entity" if suffix == "entity" else "counterparty"}))
        if len(pending) >= 256:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await nc.close()
    return first


def throughput(events: pl.DataFrame, files: tuple[Path, Path]) -> None:
    url = new_database()
    prefix = f"benchtp{uuid.uuid4().hex[:6]}"
    msgs = messages(events, 1000 * PARTITIONS)  # ~1,000 rows per partition message, as assay publish sends
    import nats

    async def setup() -> None:
        nc = await nats.connect(NATS_URL)
        await make_streams(nc.jetstream(), prefix)
        await nc.close()

    asyncio.run(setup())
    workers = start_workers(*files, url, prefix, CHECKPOINT)
    time.sleep(6)  # start-up: imports, JIT cache, connections
    first = asyncio.run(publish(prefix, msgs, None, 1000 * PARTITIONS))
    published = time.perf_counter()
    done = {}
    while True:
        done = checkpointed_rows(url)
        if done.get("entity", 0) >= events.height and done.get("cp", 0) >= events.height:
            break
        if any(w.poll() is not None for w in workers):
            raise SystemExit("a worker stopped")
        time.sleep(0.05)
    took = time.perf_counter() - first
    for w in workers:
        w.terminate()
        w.wait()
    alerts = assay.run(files[0], events).height + assay.run(files[1], events).height
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT COUNT(*) FROM alerts")).scalar()
    engine.dispose()
    print(f"throughput: {events.height:,} events (each through both workers) published in "
          f"{published - first:.1f} s, evaluated and alerts stored after {took:.1f} s: "
          f"{events.height / took:,.0f} events/s end to end; alerts stored {stored:,} (batch run: {alerts:,})")
    asyncio.run(delete_streams(prefix))
    drop_database(url)


def latency(events: pl.DataFrame, files: tuple[Path, Path], rate: float) -> None:
    import nats

    url = new_database()
    prefix = f"benchlat{uuid.uuid4().hex[:6]}"
    msgs = messages(events, 500)
    times: list[float] = []
    got: list[tuple[str, float]] = []
    cpu: dict[str, float] = {}  # share of one core each process used during the run

    async def main() -> None:
        nc = await nats.connect(NATS_URL)
        await make_streams(nc.jetstream(), prefix)

        async def on_alert(msg) -> None:  # type: ignore[no-untyped-def]
            alert = json.loads(msg.data)
            got.append((alert["trigger_event_id"], time.perf_counter(), alert["scenario"]))

        await nc.subscribe("assay.alerts.bench", cb=on_alert)
        workers = start_workers(*files, url, prefix, CHECKPOINT)
        await asyncio.sleep(6)
        # the harness's own objects (a million rows in messages) out of the cycle collector's
        # full passes, which would pause the publisher and the alert subscriber
        gc.collect()
        gc.freeze()
        pids = {"entity worker": workers[0].pid, "counterparty worker": workers[-1].pid,
                "publisher and alert subscriber": os.getpid(), "NATS server": nats_server_pid()}
        before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
        started = time.perf_counter()
        await publish(prefix, msgs, rate, 500, times)
        await asyncio.sleep(3)
        elapsed = time.perf_counter() - started
        for name, pid in pids.items():
            after = cpu_seconds(pid) if pid else None
            if after is not None and before.get(name) is not None:
                cpu[name] = (after - before[name]) / elapsed
        for w in workers:
            w.terminate()
            w.wait()
        await nc.close()

    asyncio.run(main())
    # a row's publish time is its entity message's (the one its alerts come from, but for the
    # fan-in's, whose counterparty message was published right after it)
    sent_at = {eid: t for (suffix, _, _, ids), t in zip(msgs, times, strict=True) if suffix == "entity"
               for eid in ids.to_list()}
    lat = np.array([(t - sent_at[eid]) * 1000 for eid, t, _ in got if eid in sent_at])
    if os.environ.get("BENCH_LATENCIES"):  # (received at, latency ms) of each alert, for a closer look
        np.save(os.environ["BENCH_LATENCIES"], np.array([(t, (t - sent_at[eid]) * 1000) for eid, t, _ in got
                                                          if eid in sent_at]))
    fan_in = np.array([scenario == "fan-in-1h" for eid, _, scenario in got if eid in sent_at], bool)
    if lat.size == 0:
        print("latency: no alerts received")
    else:
        print(f"latency at {rate:,.0f} events/s over {events.height:,} events: {lat.size:,} alerts, "
              f"p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms, max {lat.max():.0f} ms "
              f"(p50 over the first fifth of the run {np.percentile(lat[:lat.size // 5], 50):.0f} ms, "
              f"the last fifth {np.percentile(lat[-lat.size // 5:], 50):.0f} ms)")
        for name, mine in (("entity worker", lat[~fan_in]), ("counterparty worker", lat[fan_in])):
            if mine.size:
                print(f"  {name}: {mine.size:,} alerts, p50 {np.percentile(mine, 50):.0f} ms, "
                      f"p99 {np.percentile(mine, 99):.0f} ms")
    if cpu:
        print("  CPU during the run (cores; the machine has " f"{os.cpu_count()}): "
              + ", ".join(f"{name} {share:.2f}" for name, share in cpu.items()))
    asyncio.run(delete_streams(prefix))
    drop_database(url)


def main() -> None:
    global PARTITIONS, CHECKPOINT, ENTITY_WORKERS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows for the throughput run")
    parser.add_argument("--rate", type=float, default=50_000, help="events/s for the latency run")
    parser.add_argument("--latency-seconds", type=float, default=20, help="length of the latency run")
    parser.add_argument("--skip", choices=("throughput", "latency"), help="leave one part out")
    parser.add_argument("--partitions", type=int, default=PARTITIONS, help="partitions per stream")
    parser.add_argument("--checkpoint-every", default=CHECKPOINT, help="the workers' --checkpoint-every")
    parser.add_argument("--entity-workers", type=int, default=ENTITY_WORKERS,
                        help="workers dividing the entity stream's partitions (one Python process uses one core; "
                             "needs --partitions at least W)")
    args = parser.parse_args()
    PARTITIONS, CHECKPOINT, ENTITY_WORKERS = args.partitions, args.checkpoint_every, args.entity_workers
    if ENTITY_WORKERS > PARTITIONS:
        parser.error(f"--entity-workers {ENTITY_WORKERS} needs at least as many partitions (--partitions)")
    folder = Path(__file__).resolve().parent / "data"
    folder.mkdir(exist_ok=True)
    files = scenario_files(folder)
    events = pl.read_parquet(generate(10_000_000))
    if args.skip != "throughput":
        throughput(events.head(args.rows), files)
    if args.skip != "latency":
        latency(events.head(int(args.rate * args.latency_seconds)), files, args.rate)


if __name__ == "__main__":
    main()
