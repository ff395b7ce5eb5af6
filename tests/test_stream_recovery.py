"""The stream worker as a process: SIGTERM drains, SIGKILL at random points loses and
duplicates nothing, and two workers splitting the partitions give the alerts of one."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import func, select, text

from assay.store import open_store
from assay.store.models import Alert, StreamCheckpoint
from assay.streaming.publish import publish_frame
from conftest import NATS_URL
from test_stream import dataset, expected_alerts, same, scenarios, stored_alerts

nats = pytest.importorskip("nats")


def worker(scenario_file, store_url: str, subject: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "assay.cli", "stream", str(scenario_file), "--nats", NATS_URL, "--store", store_url,
         "--subject", subject, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return out


def checkpoints(store_url: str) -> dict[int, tuple[int, int]]:
    store = open_store(store_url)
    try:
        with store.session() as session:
            return {c.partition: (c.last_seq, c.rows) for c in session.query(StreamCheckpoint)}
    finally:
        store.engine.dispose()


def alert_count(store_url: str) -> int:
    store = open_store(store_url)
    try:
        with store.session() as session:
            return session.scalar(select(func.count()).select_from(Alert)) or 0
    finally:
        store.engine.dispose()


def setup(tmp_path, subject: str, customers: int, seed: int, partitions: int = 4, batch: int = 250):
    purpose = f"fraud-{uuid.uuid4().hex[:6]}"
    text = scenarios(purpose)
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    events = dataset(customers=customers, seed=seed)
    asyncio.run(publish_frame(events, url=NATS_URL, subject=subject, partitions=partitions, batch=batch))
    return path, events, expected_alerts(text, events)


async def ack_floors(subject: str, consumer: str, partitions: int) -> dict[int, int]:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        stream = subject.upper().replace(".", "_")
        return {p: (await js.consumer_info(stream, f"{consumer}-{p}")).ack_floor.stream_seq for p in range(partitions)}
    finally:
        await nc.close()


def test_sigterm_drains_checkpoints_and_acknowledges(tmp_path, pg_url, nats_subject):
    path, events, want = setup(tmp_path, nats_subject, customers=4000, seed=11)
    proc = worker(path, pg_url, nats_subject, "--fetch", "2", "--checkpoint-every", "30s", "--consumer", "t")
    deadline = time.monotonic() + 120
    while alert_count(pg_url) < 50:  # mid-stream
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = finish(proc, timeout=60)
    assert "stopped after" in out
    saved = checkpoints(pg_url)
    assert 0 < sum(rows for _, rows in saved.values()) < events.height  # stopped mid-stream
    floors = asyncio.run(ack_floors(nats_subject, "t", 4))
    assert floors == {p: seq for p, (seq, _) in saved.items()}  # what was processed is acknowledged
    finish(worker(path, pg_url, nats_subject, "--consumer", "t", "--exit-when-idle", "2s"))
    same(stored_alerts(pg_url), want)


def test_a_failed_checkpoint_stops_the_worker_and_a_restart_loses_nothing(tmp_path, pg_url, nats_subject):
    """The store refuses a (delta) checkpoint mid-stream: the worker stops with one line and
    acknowledges nothing more; once the store is back, a restart ends with the batch alerts."""
    path, events, want = setup(tmp_path, nats_subject, customers=20_000, seed=5)
    proc = worker(path, pg_url, nats_subject, "--fetch", "2", "--checkpoint-every", "0.3s")
    store = open_store(pg_url)
    try:
        deadline = time.monotonic() + 120
        with store.engine.connect() as conn:
            while not conn.execute(text("SELECT COUNT(*) FROM stream_checkpoint_deltas")).scalar():
                assert proc.poll() is None and time.monotonic() < deadline, "no delta checkpoint was written"
                time.sleep(0.05)
                conn.commit()
        with store.engine.begin() as conn:  # the next delta cannot be written
            conn.execute(text("ALTER TABLE stream_checkpoint_deltas RENAME TO deltas_away"))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and "Traceback" not in err, err
        assert "assay: error: the store failed" in err and "restart" in err
        assert sum(rows for _, rows in checkpoints(pg_url).values()) < events.height  # stopped mid-stream
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE deltas_away RENAME TO stream_checkpoint_deltas"))
    finally:
        store.engine.dispose()
    finish(worker(path, pg_url, nats_subject, "--exit-when-idle", "2s"))
    same(stored_alerts(pg_url), want)


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path, pg_url, nats_subject):
    path, events, want = setup(tmp_path, nats_subject, customers=60_000, seed=7, partitions=8, batch=1000)
    assert events.height >= 1_000_000
    rng = random.Random(20261129)
    kills = 0
    while kills < 20:
        # two messages per fetch and short lives: the stream must outlast 20 kills
        proc = worker(path, pg_url, nats_subject, "--fetch", "2", "--checkpoint-every", "0.3s")
        if kills == 0:
            # the first life lasts until its first checkpoint: on a fresh checkout it compiles
            # the kernels Numba has not cached yet (seconds), and a kill before that point
            # would leave every later life to compile them again
            deadline = time.monotonic() + 300
            while (not sum(rows for _, rows in checkpoints(pg_url).values()) and time.monotonic() < deadline
                   and proc.poll() is None):
                time.sleep(0.2)
        time.sleep(rng.uniform(0.4, 2.5))
        assert proc.poll() is None, proc.communicate()[1]
        proc.kill()  # SIGKILL: no drain, no checkpoint
        proc.wait()
        kills += 1
        done = sum(rows for _, rows in checkpoints(pg_url).values())
        assert done < events.height, f"the stream was processed completely after only {kills} kills"
    assert sum(rows for _, rows in checkpoints(pg_url).values()) > 0  # the killed workers made progress
    finish(worker(path, pg_url, nats_subject, "--exit-when-idle", "3s"), timeout=600)
    assert sum(rows for _, rows in checkpoints(pg_url).values()) == events.height
    same(stored_alerts(pg_url), want)


def test_two_workers_splitting_the_partitions_give_the_alerts_of_one(tmp_path, pg_url, nats_subject):
    path, events, want = setup(tmp_path, nats_subject, customers=3000, seed=13)
    first = worker(path, pg_url, nats_subject, "--partitions", "0-1", "--exit-when-idle", "3s", "--fetch", "3")
    second = worker(path, pg_url, nats_subject, "--partitions", "2,3", "--exit-when-idle", "3s", "--fetch", "3")
    for proc in (first, second):
        finish(proc)
    assert sorted(checkpoints(pg_url)) == [0, 1, 2, 3]
    same(stored_alerts(pg_url), want)
