"""Killing the server with SIGKILL mid-burst loses no acknowledged create."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from support.live import LiveServer

pytestmark = pytest.mark.live

WRITERS = 4
BURST_SECONDS = 1.5


def _burst(
    server: LiveServer, token: str, acked: list[str], stop: threading.Event, writer: int
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        n = 0
        while not stop.is_set() and n < 5000:
            account_id = f"burst-{writer}-{n}"
            n += 1
            try:
                response = http.post(
                    "/api/v1/accounts", json={"id": account_id, "stage": "sandbox"}
                )
            except httpx.HTTPError:
                return
            if response.status_code == 201:
                acked.append(account_id)


def _run_burst_and_kill(server: LiveServer) -> list[str]:
    token = server.admin_token()
    acked: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_burst, args=(server, token, acked, stop, w))
        for w in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(BURST_SECONDS)
    # Each create recompiles policies on the next request; on a loaded machine wait
    # (bounded) until enough creates were acknowledged to prove something.
    deadline = time.monotonic() + 20
    while len(acked) <= 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acked) > 10, "the burst acknowledged too few creates to prove anything"
    return acked


def test_sigkill_on_sqlite(tmp_path: Path) -> None:
    server = LiveServer(home=tmp_path / "home").start()
    try:
        acked = _run_burst_and_kill(server)
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
def test_sigkill_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy import create_engine, text

    server = LiveServer(home=tmp_path / "home", database_url=postgres_url).start()
    try:
        acked = _run_burst_and_kill(server)
    finally:
        server.stop()
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            present = {row[0] for row in conn.execute(text("SELECT id FROM accounts"))}
    finally:
        engine.dispose()
    assert set(acked) <= present
