"""Alembic migrations: one history for SQLite and PostgreSQL, run programmatically.

The server upgrades on start and ``ketch db upgrade`` does it on demand. On
PostgreSQL an advisory lock keeps two starting servers from migrating at once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from ketch.store.engine import WRITE_OPTION

_HERE = Path(__file__).parent
_PG_LOCK_KEY = 0x6B65746368  # "ketch"


def alembic_config() -> Config:
    """An Alembic configuration pointing at this folder (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent).

    The migration is one write transaction: on SQLite it starts with ``BEGIN IMMEDIATE``,
    so a second upgrader waits on the busy timeout instead of failing mid-migration.
    """
    config = alembic_config()
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
