"""A process killed with SIGKILL mid-burst leaves a trail that verifies after a restart.

The child appends from several threads while its digest writer runs every 20 ms, so
the kill very likely lands inside an append or between a digest's file and its commit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ketch import audit
from ketch.server.context import build_context
from support.audit import verify
from support.settings import make_settings

CHILD = textwrap.dedent(
    """
    import sys, threading
    from datetime import timedelta
    from ketch import audit
    from ketch.core.settings import KetchSettings
    from ketch.server.context import build_context

    context = build_context(KetchSettings(home=sys.argv[1], database_url=sys.argv[2]))
    trail = audit.AuditTrail(
        context.audit.key_path, context.audit.digest_dir, timedelta(milliseconds=20)
    )

    def append(writer):
        while True:
            with context.uow(write=True) as uow:
                audit.record_event(uow, audit.AuditEntry(
                    principal=f"w{writer}", principal_id=None, account="burst", action="Burst",
                    resource=None, request_id=None, source_ip=None, user_agent=None,
                    outcome=audit.Outcome.SUCCESS,
                ))

    for writer in range(4):
        threading.Thread(target=append, args=(writer,), daemon=True).start()
    print("running", flush=True)
    audit.DigestWriter(context.uow, trail).run(threading.Event())
    """
)


def _digests_written(home: Path) -> int:
    """How many digest numbers have a file (its name starts with the number)."""
    return len({path.name[:10] for path in (home / "audit" / "digests").glob("*.json")})


def test_a_trail_killed_mid_burst_verifies_after_restart(tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETCH_")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), database_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"running", child.stderr
        time.sleep(1.5)
        # Appenders starve the digest writer on a loaded machine: wait (bounded) until
        # enough digests were written for the kill to have had chances to land badly.
        deadline = time.monotonic() + 30
        while _digests_written(home) <= 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)

    context = build_context(make_settings(home, database_url))
    try:
        audit.DigestWriter(context.uow, context.audit).write_now()  # what a restart does
        report = verify(context)
    finally:
        context.close()
    assert report.ok, [f.message for f in report.findings]
    assert report.records_checked > 20 and report.digests_checked > 5
