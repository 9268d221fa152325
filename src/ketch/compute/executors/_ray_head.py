"""A Ray head of ketch's own, on 127.0.0.1 with token authentication.

Used when ``jobs.ray.address`` is unset. ``ray start --head --block`` runs in a session of
its own (like the local executor's supervisors, it outlives the server, and so do the
attempts on it); ``head.json`` in the head's folder records its pid, start time and
address, so the next server start finds it again instead of starting a second one.

Everything it opens listens on 127.0.0.1 only. Ray rewrites a loopback node address into
the machine's outward one unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (the switch that
makes Ray a single-machine runtime); with it, the GCS, raylet, object manager and agents
bind to 127.0.0.1 (checked by ``tests/compute/executors/test_ray.py``). Authentication:
``RAY_AUTH_MODE=token`` and the token in ``auth_token`` (mode 0600), generated on first
use unless configured. The head's environment is built here from nothing, so none of the
server's secrets reach it or its workers.

The folder's ``head.lock`` (``flock``) makes concurrent starts of one folder wait for each
other. Ray's own files go to a short temporary folder (Ray's socket paths must stay under
the kernel's 107-character limit), recorded in ``head.json`` and removed by :meth:`stop`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ketch.compute.executors._procs import Process
from ketch.core.errors import BackendUnavailable
from ketch.core.files import locked, write_private_text

__all__ = ["LOOPBACK", "LocalRayHead"]

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
HEAD_FILE = "head.json"
TOKEN_FILE = "auth_token"  # noqa: S105 - a file name, not a secret
LOCK_FILE = "head.lock"
LOG_FILE = "head.log"
READY = b"Ray runtime started"
OBJECT_STORE_BYTES = 128 * 1024 * 1024
"""Attempts exchange files, not Ray objects: the object store stays small (Ray's minimum
is about 75 MiB)."""
MAX_TEMP_DIR_CHARS = 40
STOP_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class _Head:
    """What ``head.json`` holds."""

    pid: int
    start_time: int
    address: str
    temp_dir: str
    token_digest: str

    @property
    def process(self) -> Process:
        return Process(self.pid, self.start_time)


class LocalRayHead:
    """Starts, finds and stops the Ray head kept in ``folder``.

    ``cpus``, ``memory_mib`` and ``gpus`` are the logical resources the head offers
    (Ray's own detection when None); ``token`` replaces the generated one.
    """

    def __init__(
        self,
        folder: Path,
        *,
        cpus: int | None = None,
        memory_mib: int | None = None,
        gpus: int | None = None,
        token: str | None = None,
        start_timeout_seconds: float = 90.0,
    ) -> None:
        self.folder = folder
        self.cpus = cpus
        self.memory_mib = memory_mib
        self.gpus = gpus
        self._token = token
        self.start_timeout_seconds = start_timeout_seconds

    @property
    def token_file(self) -> Path:
        return self.folder / TOKEN_FILE

    def ensure(self) -> str:
        """The address of the running head, started first if none answers."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with locked(self.folder / LOCK_FILE):
            digest = self._ensure_token()
            head = self._read()
            same = head is not None and head.process.alive() and head.token_digest == digest
            if head is not None and same and _answers(head.address):
                return head.address
            if head is not None:
                logger.warning("restarting the local Ray head (pid %d)", head.pid)
                self._stop(head)
            return self._start(digest).address

    def address(self) -> str | None:
        """The address of the head if one is running, else None."""
        head = self._read()
        return head.address if head is not None and head.process.alive() else None

    def stop(self) -> None:
        """Stop the head and every attempt on it (tests; a head is otherwise left running)."""
        if not self.folder.is_dir():
            return
        with locked(self.folder / LOCK_FILE):
            head = self._read()
            if head is not None:
                self._stop(head)

    # -- helpers ------------------------------------------------------------------------

    def _ensure_token(self) -> str:
        """Write the configured or a new token unless the file has it; its digest."""
        try:
            current: str | None = self.token_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            current = None
        token = self._token or current or secrets.token_hex(32)
        if token != current:
            write_private_text(self.token_file, token)
        return hashlib.sha256(token.encode()).hexdigest()

    def _read(self) -> _Head | None:
        try:
            return _Head(**json.loads((self.folder / HEAD_FILE).read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _start(self, token_digest: str) -> _Head:
        port = _free_port()
        temp_dir = self._temp_dir()
        log_path = self.folder / LOG_FILE
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                self._argv(port, temp_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._environment(),
                cwd=self.folder,
                start_new_session=True,
            )
        started = Process.of(process.pid)
        assert started is not None, "an unreaped child always has /proc/<pid>/stat"
        head = _Head(process.pid, started.start_time, f"{LOOPBACK}:{port}", temp_dir, token_digest)
        write_private_text(self.folder / HEAD_FILE, json.dumps(asdict(head)))
        deadline = time.monotonic() + self.start_timeout_seconds
        while not (READY in log_path.read_bytes() and _answers(head.address)):
            if process.poll() is not None or time.monotonic() > deadline:
                self._stop(head)
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BackendUnavailable(f"the local Ray head did not start:\n{tail}")
            time.sleep(0.1)
        logger.info("started a local Ray head at %s (pid %d)", head.address, head.pid)
        return head

    def _argv(self, port: int, temp_dir: str) -> list[str]:
        argv = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block"]
        argv += [
            f"--node-ip-address={LOOPBACK}",
            f"--port={port}",
            f"--metrics-export-port={_free_port()}",
            "--dashboard-agent-listen-port=0",
            "--include-dashboard=false",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ]
        if importlib.util.find_spec("grpc") is not None:
            # Ray then starts its client server, by default on port 10001 for every head:
            # give it a free one (without grpc, a minimal Ray, it starts none).
            argv.append(f"--ray-client-server-port={_free_port()}")
        if self.cpus is not None:
            argv.append(f"--num-cpus={self.cpus}")
        if self.memory_mib is not None:
            argv.append(f"--memory={self.memory_mib * 1024 * 1024}")
        if self.gpus is not None:
            argv.append(f"--num-gpus={self.gpus}")
        return argv

    def _environment(self) -> dict[str, str]:
        return {
            **ray_environment(self.token_file, loopback=True),
            # Each attempt gets an actor of its own: idle pooled workers are only memory.
            "RAY_enable_worker_prestart": "0",
            "RAY_prestart_worker_first_driver": "0",
        }

    def _temp_dir(self) -> str:
        wanted = self.folder / "tmp"
        if len(str(wanted)) <= MAX_TEMP_DIR_CHARS:
            wanted.mkdir(mode=0o700, exist_ok=True)
            return str(wanted)
        return tempfile.mkdtemp(prefix="ketch-ray-")

    def _stop(self, head: _Head) -> None:
        """SIGTERM ``ray start --block`` (it stops what it started), then SIGKILL its group."""
        if head.process.alive():
            head.process.signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            while head.process.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if head.process.alive():
                os.killpg(head.pid, signal.SIGKILL)
        (self.folder / HEAD_FILE).unlink(missing_ok=True)
        if head.temp_dir != str(self.folder / "tmp"):
            shutil.rmtree(head.temp_dir, ignore_errors=True)
        logger.info("stopped the local Ray head at %s", head.address)


def ray_environment(token_file: Path, *, loopback: bool) -> dict[str, str]:
    """The whole environment of a Ray process ketch starts (the head, the driver): token
    authentication, no usage reports, nothing of the server's own environment.
    ``loopback`` keeps Ray's addresses on 127.0.0.1 (see the module docstring)."""
    environment = {
        "PATH": os.defpath,
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_file),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if loopback:
        environment["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return environment


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def _free_port() -> int:
    """A loopback port that was free a moment ago, outside Ray's worker range (10002-19999)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])
