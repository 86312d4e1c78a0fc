"""Engines and sessions: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(database_url: str, *, sqlite_busy_timeout_ms: int = 15_000) -> Engine:
    """An engine for ``database_url``; on SQLite with WAL, foreign keys and a busy timeout."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # pre_ping: behind a load balancer, PostgreSQL connections get cut while idle.
        return create_engine(url, pool_pre_ping=True)

    engine = create_engine(url, connect_args={"timeout": sqlite_busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers (the web UI) do not block the ingest writer, nor it them.
            if url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
        finally:
            cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: routes render objects after the commit that stored them.
    return sessionmaker(engine, expire_on_commit=False)
