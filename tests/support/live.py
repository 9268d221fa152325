"""A real `ketch server` process on a free loopback port, for live tests and the demo.

The process runs in its own session so that it and only it can be stopped by id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.processes import free_port


@dataclass
class LiveServer:
    """Starts `python -m ketch server` with ``home`` as KETCH_HOME."""

    home: Path
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KETCH_")}
        env["KETCH_HOME"] = str(self.home)
        if self.database_url:
            env["KETCH_DATABASE_URL"] = self.database_url
        return env

    def cli_env(self, token: str | None = None) -> dict[str, str]:
        """Environment for CLI subprocesses that talk to this server."""
        env = self.env()
        env["KETCH_URL"] = self.url
        env["KETCH_TOKEN"] = token if token is not None else self.admin_token()
        return env

    def start(self, timeout: float = 60.0) -> LiveServer:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 (kept open for the child)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ketch", "server", "--port", str(self.port)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ketch server exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"ketch server not ready in {timeout} s:\n{self.log_tail()}")

    def admin_token(self) -> str:
        data = json.loads((self.home / "initial-admin.json").read_text())
        return str(data["token"])

    def admin_password(self) -> str:
        data = json.loads((self.home / "initial-admin.json").read_text())
        return str(data["password"])

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        path = self.home / "server.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )


BURST_WRITERS = 4
MIN_ACKNOWLEDGED = 10


def _create_accounts(
    server: LiveServer, token: str, prefix: str, acked: list[str], stop: threading.Event
) -> None:
    """Create sandbox accounts until stopped or the server is gone; record each 201."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as http:
        for n in range(5000):
            if stop.is_set():
                return
            account_id = f"{prefix}-{n}"
            try:
                response = http.post(
                    "/api/v1/accounts", json={"id": account_id, "stage": "sandbox"}
                )
            except httpx.HTTPError:
                return
            if response.status_code == 201:
                acked.append(account_id)


def burst_then_kill(server: LiveServer, *, seconds: float, prefix: str = "burst") -> list[str]:
    """Create accounts from several writers for ``seconds``, then SIGKILL the server.

    On a loaded machine it waits (at most 20 s more) until more than
    ``MIN_ACKNOWLEDGED`` creates were acknowledged, so the kill lands mid-burst on enough
    work to prove something. Returns the ids of the acknowledged creates.
    """
    token = server.admin_token()
    acked: list[str] = []
    stop = threading.Event()
    writers = [
        threading.Thread(
            target=_create_accounts, args=(server, token, f"{prefix}-{w}", acked, stop)
        )
        for w in range(BURST_WRITERS)
    ]
    for writer in writers:
        writer.start()
    time.sleep(seconds)
    deadline = time.monotonic() + 20
    while len(acked) <= MIN_ACKNOWLEDGED and time.monotonic() < deadline:
        time.sleep(0.1)
    server.kill()
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    assert len(acked) > MIN_ACKNOWLEDGED, "the burst acknowledged too few creates to prove anything"
    return acked
