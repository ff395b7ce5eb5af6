"""Opening a store: SQLite by default (no server), PostgreSQL in production; migrated on open."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from ..errors import UsageError

DEFAULT_URL = "sqlite:///assay.db"


@dataclass
class Store:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Session:
        return self.sessions()


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("ASSAY_STORE") or DEFAULT_URL


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Connect and bring the schema to the newest migration."""
    url = resolve_url(url)
    if not url.startswith(("sqlite:", "postgresql")):
        raise UsageError(f"--store {url}: use sqlite:///PATH or postgresql+psycopg://...")
    # psycopg prepares a statement on its fifth run, and PostgreSQL may then keep a generic
    # plan chosen while the tables were small: a sequential scan of ``cases`` per alert batch,
    # which made a stream worker's writes slow down as the store grew. Plans per statement.
    connect_args = {"prepare_threshold": None} if make_url(url).drivername == "postgresql+psycopg" else {}
    engine = create_engine(url, future=True, connect_args=connect_args)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
            conn.execute("PRAGMA foreign_keys=ON")
    if migrate:
        upgrade(engine)
    return Store(url, engine, sessionmaker(engine, expire_on_commit=False))


def upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # several workers starting at once: one migrates, the others wait and find it done
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7301)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
