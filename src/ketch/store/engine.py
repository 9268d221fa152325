"""Engines for the metadata store: SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on and a busy timeout. pysqlite's own
transaction handling is switched off so that we emit ``BEGIN`` ourselves: write
units of work start with ``BEGIN IMMEDIATE``, which takes the write lock up front
and so waits on the busy timeout instead of failing on a lock upgrade mid-transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

WRITE_OPTION = "ketch_write"


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_engine_for_url(
    url: str, *, busy_timeout_ms: int = 10_000, pool_size: int = 10, echo: bool = False
) -> Engine:
    """Create an engine for ``url`` with ketch's settings for its dialect.

    A SQLite file's parent folder is created when missing. Plain ``postgresql://``
    URLs are routed to psycopg 3.
    """
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        in_memory = not database or database == ":memory:" or parsed.query.get("mode") == "memory"
        if not in_memory and database and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # An in-memory database gets SQLAlchemy's single-connection pool, which takes
        # no pool size.
        pool: dict[str, Any] = (
            {} if in_memory else {"pool_size": pool_size, "max_overflow": pool_size}
        )
        engine = create_engine(
            parsed,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            **pool,
        )
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return create_engine(
        parsed, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )
