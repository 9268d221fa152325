"""The acceptance test of the audit trail on a real server killed with SIGKILL.

A burst of account creates (each audited in its own transaction) runs while digests are
written every second; the server is killed mid-burst and restarted. Every acknowledged
create has its record, and the untouched trail verifies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ketch
from support.live import LiveServer, burst_then_kill

pytestmark = pytest.mark.live


def _kill_mid_burst_then_verify(home: Path, database_url: str | None) -> None:
    home.mkdir(parents=True)
    (home / "ketch.toml").write_text("[audit]\ndigest_interval_seconds = 1\n")
    server = LiveServer(home=home, database_url=database_url).start()
    try:
        acked = burst_then_kill(server, seconds=2.5, prefix="audit")
    finally:
        server.stop()

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
