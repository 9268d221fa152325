"""The throwaway cluster starts, serves a database, and leaves nothing behind when stopped."""

from __future__ import annotations

import os

import psycopg
import pytest

from support.postgres import ThrowawayPostgres, require_postgres_binaries

pytestmark = pytest.mark.postgres


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_lifecycle() -> None:
    require_postgres_binaries()
    cluster = ThrowawayPostgres()
    cluster.start()
    try:
        root, pid = cluster.root, cluster.pid
        assert cluster.running
        assert (root / "data" / "PG_VERSION").exists()

        url = cluster.create_database("probe")
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/probe"
        with psycopg.connect(cluster.conninfo("probe")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert conn.execute("show fsync").fetchone() == ("off",)

        # An open session does not stop the drop: it is forced.
        copy_url = cluster.create_database("probe_copy", template="probe")
        assert copy_url.endswith("/probe_copy")
        with psycopg.connect(cluster.conninfo("probe_copy"), autocommit=True):
            cluster.drop_database("probe_copy")
        cluster.drop_database("probe")
        cluster.drop_database("probe")  # idempotent
        with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
            names = conn.execute("select datname from pg_database").fetchall()
        assert ("probe",) not in names
    finally:
        cluster.stop()

    assert not cluster.running
    assert not root.exists()
    assert _gone(pid)
    cluster.stop()  # a second stop is harmless
