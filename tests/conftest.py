from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ASSAY_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"


@pytest.fixture
def data_dir() -> Path:
    if not DATA.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"shared data folder not found at {DATA}")
        pytest.skip(f"shared data folder not found at {DATA}")
    return DATA


# --- real services: PostgreSQL and NATS (started by .ci/run; required under CI) ---------
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
NATS_URL = "nats://127.0.0.1:4222"


def _unavailable(what: str, exc: Exception) -> None:
    if os.environ.get("CI"):
        raise RuntimeError(f"{what} must be reachable under CI: {exc}") from exc
    pytest.skip(f"{what} not reachable: {exc}")


def create_pg_database() -> str:
    """A fresh PostgreSQL database; its SQLAlchemy URL."""
    import uuid

    try:
        import psycopg

        name = f"assay_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{PG}/{name}"
    except Exception as exc:  # noqa: BLE001 - any connection failure
        _unavailable("PostgreSQL", exc)
        raise


def drop_pg_database(url: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture
def pg_url():
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def nats_subject():
    """A fresh subject prefix on the real NATS server; its stream is deleted afterwards."""
    import asyncio
    import uuid

    nats = pytest.importorskip("nats")

    async def reachable() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        await nc.close()

    try:
        asyncio.run(reachable())
    except Exception as exc:  # noqa: BLE001
        _unavailable("NATS", exc)
    name = f"assaytest{uuid.uuid4().hex[:8]}.events"
    yield name

    async def cleanup() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(name.upper().replace(".", "_"))
        finally:
            await nc.close()

    asyncio.run(cleanup())
