"""The stream worker when its NATS server goes away mid-stream and comes back.

A private JetStream server (its own port and store) is stopped and started again while a
worker is processing; the worker reconnects, subscribes again after its last processed
message, and ends with exactly the batch alerts, well before the ack wait (600 s) of
whatever was in flight when the connection died.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from assay.streaming.publish import publish_frame
from test_stream import dataset, expected_alerts, same, scenarios, stored_alerts
from test_stream_recovery import alert_count, finish

nats = pytest.importorskip("nats")
SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, store: Path) -> subprocess.Popen:
    proc = subprocess.Popen([SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.1)


@pytest.mark.skipif(not Path(SERVER).exists(), reason="nats-server is not installed")
def test_worker_survives_a_nats_restart(tmp_path, pg_url):
    port, store = free_port(), tmp_path / "jetstream"
    url = f"nats://127.0.0.1:{port}"
    server = start_server(port, store)
    try:
        subject = f"t{uuid.uuid4().hex[:8]}.events"
        purpose = f"fraud-{uuid.uuid4().hex[:6]}"
        path = tmp_path / "scenarios.yaml"
        path.write_text(scenarios(purpose))
        events = dataset(customers=4000, seed=5)
        asyncio.run(publish_frame(events, url=url, subject=subject, partitions=4, batch=250))
        want = expected_alerts(path.read_text(), events)
        proc = subprocess.Popen(
            [sys.executable, "-m", "assay.cli", "stream", str(path), "--nats", url, "--store", pg_url,
             "--subject", subject, "--fetch", "2", "--exit-when-idle", "8s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while alert_count(pg_url) < 30:  # mid-stream
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.05)
        server.terminate()
        server.wait(timeout=30)
        time.sleep(1.0)
        server = start_server(port, store)
        started = time.monotonic()
        out = finish(proc, timeout=300)
        assert "reconnected" in out
        assert time.monotonic() - started < 120  # not the 600 s ack wait of the lost deliveries
        same(stored_alerts(pg_url), want)
    finally:
        server.terminate()
        server.wait(timeout=30)
