"""Killing the server with SIGKILL mid-burst loses no acknowledged create."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from support.live import LiveServer, burst_then_kill

pytestmark = pytest.mark.live

BURST_SECONDS = 1.5


def test_sigkill_on_sqlite(tmp_path: Path) -> None:
    server = LiveServer(home=tmp_path / "home").start()
    try:
        acked = burst_then_kill(server, seconds=BURST_SECONDS)
    finally:
        server.stop()
    db = sqlite3.connect(tmp_path / "home" / "ketch.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        present = {row[0] for row in db.execute("SELECT id FROM accounts")}
    finally:
        db.close()
    assert set(acked) <= present

    restarted = LiveServer(home=tmp_path / "home", port=server.port).start()
    try:
        response = httpx.get(
            f"{restarted.url}/api/v1/accounts/{acked[-1]}",
            headers={"Authorization": f"Bearer {restarted.admin_token()}"},
        )
        assert response.status_code == 200
    finally:
        restarted.stop()


@pytest.mark.postgres
def test_sigkill_on_postgres(
    tmp_path: Path, postgres_url: str, make_engine: Callable[..., Engine]
) -> None:
    server = LiveServer(home=tmp_path / "home", database_url=postgres_url).start()
    try:
        acked = burst_then_kill(server, seconds=BURST_SECONDS)
    finally:
        server.stop()
    with make_engine(postgres_url).connect() as conn:
        present = {row[0] for row in conn.execute(text("SELECT id FROM accounts"))}
    assert set(acked) <= present
