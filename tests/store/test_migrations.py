"""Migrations: from empty to head on both databases, idempotent, and equal to the models."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, MetaData, String, inspect, text

import ketch
from ketch.store.base import Base
from ketch.store.migrations import current_revision, head_revision, upgrade

SRC = Path(ketch.__file__).parent


def _table_modules() -> list[str]:
    """Every ``tables.py`` under ``ketch``: the services' declarative tables."""
    return sorted(
        ".".join(("ketch", *path.relative_to(SRC).with_suffix("").parts))
        for path in SRC.rglob("tables.py")
    )


def full_metadata() -> MetaData:
    """``Base.metadata`` once every service's tables are imported."""
    for module in _table_modules():
        importlib.import_module(module)
    return Base.metadata


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_services_have_table_modules() -> None:
    modules = _table_modules()
    assert {"ketch.org.tables", "ketch.iam.tables", "ketch.idempotency.tables"} <= set(modules)
    metadata = full_metadata()
    assert {"organizations", "ous", "accounts", "users", "api_tokens", "client_tokens"} <= set(
        metadata.tables
    )


def test_upgrade_from_empty_reaches_head(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert _tables(engine) == set()
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _tables(engine) == set(full_metadata().tables) | {"alembic_version"}


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (id, slot, name, created_at, updated_at) "
                "VALUES ('o1', 1, 'main', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    before = _tables(engine)
    upgrade(engine)
    upgrade(engine, head_revision())
    assert current_revision(engine) == head_revision()
    assert _tables(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM organizations")).scalars().all() == ["main"]


def test_models_match_migrations(engine: Engine) -> None:
    """Autogenerate finds nothing to do: every model change came with its migration."""
    metadata = full_metadata()
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == [], "models and migrations differ:\n" + "\n".join(map(_describe, diff))


def _describe(op: object) -> str:
    """One line per autogenerate operation, naming what it touches."""
    if isinstance(op, list):
        return "; ".join(_describe(item) for item in op)
    if not isinstance(op, tuple):
        return repr(op)
    parts = []
    for item in op:
        name, table = getattr(item, "name", None), getattr(item, "table", None)
        if name is None:
            parts.append(repr(item))
        else:
            parts.append(f"{table.name}.{name}" if table is not None else str(name))
    return " ".join(parts)


def test_a_model_without_migration_is_noticed(engine: Engine) -> None:
    """The comparison above can fail: an extra column shows up as a difference."""
    upgrade(engine)
    metadata = MetaData()
    for table in full_metadata().tables.values():
        table.to_metadata(metadata)
    metadata.tables["users"].append_column(Column("nickname", String(20)))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    added = [op[3].name for op in diff if isinstance(op, tuple) and op[0] == "add_column"]
    assert added == ["nickname"]


def test_concurrent_upgrades_both_succeed(engine: Engine) -> None:
    """Two servers starting at once: one migrates, the other waits and finds head."""
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            upgrade(engine)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "an upgrade is still waiting after 30 s"
    assert failures == []
    assert current_revision(engine) == head_revision()
