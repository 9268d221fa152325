"""Engines: SQLite is tuned (WAL, foreign keys, busy timeout, early write lock); both connect."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from ketch.store.engine import WRITE_OPTION

MakeEngine = Callable[..., Engine]


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_pragmas(sqlite_url: str, make_engine: MakeEngine) -> None:
    engine = make_engine(sqlite_url, busy_timeout_ms=1234)
    assert _pragma(engine, "journal_mode") == "wal"
    assert _pragma(engine, "foreign_keys") == 1
    assert _pragma(engine, "busy_timeout") == 1234
    assert _pragma(engine, "synchronous") == 2  # FULL


def test_sqlite_default_busy_timeout(sqlite_url: str, make_engine: MakeEngine) -> None:
    engine = make_engine(sqlite_url)
    assert _pragma(engine, "busy_timeout") == 10_000


def test_every_pooled_sqlite_connection_is_configured(
    sqlite_url: str, make_engine: MakeEngine
) -> None:
    engine = make_engine(sqlite_url, busy_timeout_ms=500)
    with engine.connect() as first, engine.connect() as second:
        for conn in (first, second):
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 500


def test_sqlite_parent_folder_is_created(tmp_path: Path, make_engine: MakeEngine) -> None:
    path = tmp_path / "a" / "b" / "ketch.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert path.exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_sqlite_in_memory(url: str, make_engine: MakeEngine) -> None:
    engine = make_engine(url)
    assert _pragma(engine, "foreign_keys") == 1


def test_sqlite_write_transactions_take_the_lock_up_front(
    sqlite_url: str, make_engine: MakeEngine
) -> None:
    engine = make_engine(sqlite_url, busy_timeout_ms=50)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    writer = engine.execution_options(**{WRITE_OPTION: True})
    with writer.connect() as first, first.begin():
        # The first writer has not written anything yet, but already holds the lock:
        # a second writer waits for the busy timeout and gives up...
        with writer.connect() as second, pytest.raises(OperationalError, match="locked"):
            second.begin()
        # ...while readers are not blocked (WAL).
        with engine.connect() as reader, reader.begin():
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0
        first.execute(text("INSERT INTO t (id) VALUES (1)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_sqlite_read_transactions_do_not_take_the_write_lock(
    sqlite_url: str, make_engine: MakeEngine
) -> None:
    engine = make_engine(sqlite_url, busy_timeout_ms=50)
    writer = engine.execution_options(**{WRITE_OPTION: True})
    with engine.connect() as reader, reader.begin():
        reader.execute(text("SELECT 1"))
        with writer.connect() as conn, conn.begin():
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    with engine.connect() as conn:  # the writer's table was committed
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
@pytest.mark.postgres
def test_plain_postgres_urls_use_psycopg(
    postgres_url: str, scheme: str, make_engine: MakeEngine
) -> None:
    url = postgres_url.replace("postgresql+psycopg://", f"{scheme}://", 1)
    engine = make_engine(url)
    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_connects_and_commits_a_write(database_url: str, make_engine: MakeEngine) -> None:
    engine = make_engine(database_url, pool_size=2)
    writer = engine.execution_options(**{WRITE_OPTION: True})
    with writer.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR(20))"))
        conn.execute(text("INSERT INTO notes (id, body) VALUES (1, 'kept')"))
    with writer.connect() as conn:
        conn.execute(text("INSERT INTO notes (id, body) VALUES (2, 'lost')"))
        conn.rollback()
    engine.dispose()  # read back on a fresh connection
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, body FROM notes ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [(1, "kept")]


def test_foreign_keys_are_enforced(database_url: str, make_engine: MakeEngine) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent)")
        )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO child (id, parent_id) VALUES (1, 42)"))
