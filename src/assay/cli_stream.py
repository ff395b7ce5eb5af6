"""``assay publish`` and ``assay stream``: the command line of the streaming extra.

The parsers are built without importing NATS, so ``--help`` works without the extra;
running either command names the extra when it is missing.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

NATS_DEFAULT = "nats://127.0.0.1:4222"


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pub = sub.add_parser("publish", help="load event files into a NATS JetStream stream",
                         description="Publish events to JetStream in micro-batches (Arrow IPC), one subject per "
                                     "partition (SUBJECT.<n>, from a hash of the key), creating the stream if "
                                     "absent. Needs the 'stream' extra.")
    pub.add_argument("events", metavar="EVENTS", nargs="+", help="event files")
    pub.add_argument("--nats", default=NATS_DEFAULT, metavar="URL", help="NATS server")
    pub.add_argument("--subject", default="assay.events", help="subject prefix (default assay.events)")
    pub.add_argument("--partitions", type=int, default=8, help="number of partitions (default 8)")
    pub.add_argument("--batch", type=int, default=1000, help="rows per message (default 1000)")
    pub.add_argument("--key", default="entity", help="the column that decides the partition (default entity)")
    pub.add_argument("--map", metavar="CANONICAL=COLUMN", action="append",
                     help="read a canonical column from another column name (repeatable)")

    st = sub.add_parser("stream", help="detect on a NATS JetStream stream, alerts into the store",
                        description="Consume SUBJECT.<partition> with durable consumers, evaluate SCENARIOS with "
                                    "one engine per partition, write alerts to the store (idempotent) and publish "
                                    "them on assay.alerts.<purpose>; bad or too-late rows go to assay.deadletter. "
                                    "Checkpoints (engine state and stream sequence) are stored every few seconds "
                                    "and on SIGTERM; a restarted worker continues from them. Needs the 'stream' "
                                    "and 'store' extras.")
    st.add_argument("scenarios", metavar="SCENARIOS", help="scenario file (YAML)")
    st.add_argument("--nats", default=NATS_DEFAULT, metavar="URL", help="NATS server")
    st.add_argument("--store", metavar="URL", help="the store (default: $ASSAY_STORE or sqlite:///assay.db)")
    st.add_argument("--subject", default="assay.events", help="subject prefix of the events (default assay.events)")
    st.add_argument("--partitions", metavar="LIST",
                    help="partitions this worker owns, e.g. 0-3 or 0,2,4 (default: every partition of the stream)")
    st.add_argument("--key", default="entity",
                    help="the column the stream is partitioned by; every scenario must be keyed by it "
                         "(default entity)")
    st.add_argument("--consumer", metavar="NAME",
                    help="durable consumer name prefix and checkpoint name (default assay-<purpose>)")
    st.add_argument("--lateness", metavar="DURATION", default="0s",
                    help="allowed lateness: rows are held this long for stragglers (default 0s)")
    st.add_argument("--fetch", type=int, default=1000, metavar="N",
                    help="messages fetched per micro-batch at most (default 1000)")
    st.add_argument("--checkpoint-every", metavar="DURATION", default="10s",
                    help="how often state is checkpointed and messages acknowledged (default 10s)")
    st.add_argument("--exit-when-idle", metavar="DURATION",
                    help="stop (after a checkpoint) when no message came for this long; for backfills and tests")
    st.add_argument("--reset", action="store_true",
                    help="forget this consumer's checkpoints and start from the stream's beginning")


def seconds(text: str, option: str) -> float:
    from .durations import parse_seconds
    from .errors import UsageError

    try:
        return parse_seconds(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def run_publish(args: argparse.Namespace, parse_map) -> int:  # type: ignore[no-untyped-def]
    from .streaming.publish import publish

    started = time.perf_counter()
    report = publish([Path(p) for p in args.events], url=args.nats, subject=args.subject,
                     partitions=args.partitions, batch=args.batch, mapping=parse_map(args.map), key=args.key)
    took = time.perf_counter() - started
    print(f"published {report.rows:,} rows in {report.messages:,} messages to {args.subject}.<0-"
          f"{report.partitions - 1}> (stream {report.stream}) in {took:.2f} s")
    return 0


def run_stream(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError

    from .durations import parse_duration
    from .errors import ServiceError, UsageError
    from .scenarios import load_scenarios
    from .store import open_store
    from .streaming.checkpoints import reset_checkpoints
    from .streaming.partitions import parse_partitions
    from .streaming.worker import StreamWorker, WorkerOptions

    if args.fetch < 1:
        raise UsageError("--fetch must be at least 1")
    try:
        lateness_us = parse_duration(args.lateness, allow_zero=True)
    except ValueError as exc:
        raise UsageError(f"--lateness: {exc}") from None
    spec = load_scenarios(Path(args.scenarios))
    store = open_store(args.store)
    options = WorkerOptions(
        url=args.nats, subject=args.subject,
        partitions=parse_partitions(args.partitions) if args.partitions else None,
        consumer=args.consumer, key=args.key, lateness_us=lateness_us,
        fetch=args.fetch, checkpoint_seconds=seconds(args.checkpoint_every, "--checkpoint-every"),
        idle_exit_seconds=seconds(args.exit_when_idle, "--exit-when-idle") if args.exit_when_idle else None)
    worker = StreamWorker(spec, store, options, log=lambda line: print(line, flush=True))
    if args.reset:
        print(f"reset {reset_checkpoints(store, worker.consumer)} checkpoint(s) of consumer {worker.consumer}")
    started = time.perf_counter()
    import asyncio  # here, not at the top: every command builds this module's parsers (37 ms)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.run(stop)

    try:
        asyncio.run(main())
    except DBAPIError as exc:
        # the worker stopped where it stood: what it processed after its last checkpoint is
        # not acknowledged, and a restart processes it again from that checkpoint
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise ServiceError(f"the store failed ({type(exc.orig).__name__}: {first}); stopped without "
                           "acknowledging what the last stored checkpoint does not cover: restart the "
                           "worker once the store is back") from None
    r = worker.report
    took = time.perf_counter() - started
    print(f"stopped after {took:.1f} s: {r.rows:,} rows in {r.messages:,} messages, {r.alerts:,} alerts "
          f"({r.new_alerts:,} new in the store), {r.deadletters:,} dead letters, {r.checkpoints:,} checkpoints",
          flush=True)
    return 0
