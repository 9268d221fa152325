"""The acceptance test of the audit trail on a real server killed with SIGKILL.

A burst of account creates (each audited in its own transaction) runs while digests are
written every second; the server is killed mid-burst and restarted. Every acknowledged
create has its record, and the untouched trail verifies.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

import ketch
from support.live import LiveServer

pytestmark = pytest.mark.live

WRITERS = 4


def _burst(server: LiveServer, token: str, acked: list[str], writer: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        for n in range(5000):
            account_id = f"audit-{writer}-{n}"
            try:
                response = http.post(
                    "/api/v1/accounts", json={"id": account_id, "stage": "sandbox"}
                )
            except httpx.HTTPError:
                return
            if response.status_code == 201:
                acked.append(account_id)


def _kill_mid_burst_then_verify(home: Path, database_url: str | None) -> None:
    home.mkdir(parents=True)
    (home / "ketch.toml").write_text("[audit]\ndigest_interval_seconds = 1\n")
    server = LiveServer(home=home, database_url=database_url).start()
    acked: list[str] = []
    try:
        token = server.admin_token()
        threads = [
            threading.Thread(target=_burst, args=(server, token, acked, w)) for w in range(WRITERS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(2.5)
        # On a loaded machine wait (bounded) until enough creates were acknowledged.
        deadline = time.monotonic() + 20
        while len(acked) <= 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        server.kill()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        server.stop()
    assert len(acked) > 10, "the burst acknowledged too few creates to prove anything"

    restarted = LiveServer(home=home, database_url=database_url, port=server.port).start()
    try:
        with ketch.Client(url=restarted.url, token=restarted.admin_token()) as client:
            report = client.audit.verify()
            recorded = {
                (e.resource or "").rsplit("/", 1)[-1]
                for e in client.audit.iter_all(action="CreateAccount", outcome="success")
            }
    finally:
        restarted.stop()
    assert report.ok, [f.message for f in report.findings]
    assert report.digests_checked >= 2
    assert set(acked) <= recorded


def test_audit_trail_survives_sigkill_on_sqlite(tmp_path: Path) -> None:
    _kill_mid_burst_then_verify(tmp_path / "home", None)


@pytest.mark.postgres
def test_audit_trail_survives_sigkill_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    _kill_mid_burst_then_verify(tmp_path / "home", postgres_url)
