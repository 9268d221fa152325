"""A real S3-compatible server on loopback (moto's standalone server), for the S3 tests.

``MotoS3Server`` runs ``python -m moto.server`` in its own session on ``127.0.0.1`` and a
free port, polls it over HTTP until it answers (bounded by ``startup_timeout``), and
stops it by its pid. Moto keeps every bucket in memory and accepts any credentials;
tests stay apart by using a fresh bucket each (:meth:`MotoS3Server.create_bucket`).

The session fixture :func:`s3_server` yields a started server. It skips when
``moto[server]`` is not installed, and fails instead in CI or with
``KETCH_TEST_S3=required``. For the session it also removes ``AWS_*`` variables from the
environment: obstore reads them whenever it builds a store, and ``AWS_ENDPOINT_URL_S3``
would even send the tests' requests to another endpoint.

Usage::

    with MotoS3Server() as server:
        bucket = server.create_bucket()
        store = S3Store(bucket, endpoint=server.endpoint, ...)
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest

from support.processes import LOOPBACK, ChildProcessHelper, free_port, spawn, stop_process, tail
from support.required import skip_or_fail

__all__ = ["MotoS3Server", "S3ServerStartError", "s3_server"]

_PORT_ATTEMPTS = 3
_READY_PATH = "/moto-api/"
"""Moto's own dashboard: a 200 there is moto, not whatever else took the port."""


class S3ServerStartError(RuntimeError):
    """The moto server did not answer within the startup timeout."""


class MotoS3Server(ChildProcessHelper):
    """One moto S3 server: ``start()``, use ``endpoint`` and the credentials, ``stop()``."""

    access_key_id = "ketch-test-access-key"
    secret_access_key = "ketch-test-secret-key"  # moto accepts any credentials
    region = "us-east-1"

    def __init__(self, *, startup_timeout: float = 30.0, stop_timeout: float = 10.0) -> None:
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_path: Path | None = None

    @staticmethod
    def available() -> bool:
        """True if moto and the web stack of its standalone server are installed."""
        return all(importlib.util.find_spec(name) for name in ("moto", "flask", "flask_cors"))

    # -- state -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``: path-style S3 (``<endpoint>/<bucket>/<key>``)."""
        if self._port is None or self._process is None:
            raise RuntimeError("the S3 server is not started")
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the S3 server is not started")
        return self._process.pid

    def log_tail(self) -> str:
        return tail(self._log_path)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self._process is not None:
            raise RuntimeError("the S3 server is already started")
        fd, log_name = tempfile.mkstemp(prefix="ketch-moto-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log_name)
        atexit.register(self.stop)
        try:
            for attempt in range(_PORT_ATTEMPTS):
                self._port = free_port()
                self._process = spawn(self._argv(), log=self._log_path, env=_environment())
                if self._wait_ready():
                    return self
                # Another process may have taken the port between the probe and moto's
                # bind: try a new port if that is why it exited, else give up.
                exited = self._process is None
                if not exited or "in use" not in self.log_tail():
                    break
                if attempt + 1 < _PORT_ATTEMPTS:
                    self._log_path.write_bytes(b"")
            raise S3ServerStartError(
                f"the moto S3 server did not answer within {self.startup_timeout:.0f} s:\n"
                f"{self.log_tail()}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server it started (SIGTERM, then SIGKILL to its group). Idempotent."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout=self.stop_timeout)
        self._port = None
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self._port)]

    def _wait_ready(self) -> bool:
        """Poll until moto answers (True), or it exits or the timeout passes (False)."""
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            try:
                response = httpx.get(self.endpoint + _READY_PATH, timeout=2.0, trust_env=False)
                if response.status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        return False

    # -- test helpers ----------------------------------------------------------------

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name unless given); returns its name."""
        bucket = name or f"ketch-test-{uuid.uuid4().hex[:16]}"
        response = httpx.put(f"{self.endpoint}/{bucket}", timeout=10.0, trust_env=False)
        response.raise_for_status()
        return bucket


def _environment() -> dict[str, str]:
    """The server's environment: ours without ``AWS_*`` settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    """A moto S3 server for the session; ``AWS_*`` variables are unset meanwhile."""
    if not MotoS3Server.available():
        skip_or_fail("S3", "moto[server] is missing; install the dev extra (pip install -e .[dev])")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            patch.delenv(name)
        with MotoS3Server() as server:
            yield server
