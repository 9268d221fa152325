"""Attempts as local processes, each under a supervisor that outlives the server.

``start`` writes the launch description (``launch.json``, 0600: it holds the job's
environment) into a fresh folder under ``state_dir`` and starts ``_supervisor.py`` there in
a new session. The supervisor starts the user's command, applies the instance type's
limits, enforces the runtime limit and stops, and writes ``result.json`` as its last act.
The handle is the supervisor's pid, its start time (so a reused pid is not taken for it)
and the folder, which is all a fresh executor needs after a server restart: ``result.json``
says how the attempt ended; a live supervisor means it is running; neither means it is lost.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ketch.compute.executors import AttemptState, AttemptStatus, Handle, Launch

__all__ = ["LocalExecutor"]

SUPERVISOR = Path(__file__).with_name("_supervisor.py")
RESULT_FILE = "result.json"
RUNNING_FILE = "running.json"
STOP_FILE = "stop.json"
LAUNCH_FILE = "launch.json"
POLL_SECONDS = 0.005
"""How often :meth:`LocalExecutor.wait` looks for a result when it cannot watch the process."""
UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class _Supervisor:
    """What a handle holds: the supervisor process and the attempt's folder."""

    pid: int
    start_time: int
    folder: Path

    def to_handle(self) -> Handle:
        data = {"pid": self.pid, "start_time": self.start_time, "folder": str(self.folder)}
        return json.dumps(data)

    @classmethod
    def from_handle(cls, handle: Handle) -> _Supervisor:
        try:
            data = json.loads(handle)
            return cls(int(data["pid"]), int(data["start_time"]), Path(data["folder"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a local executor handle: {handle[:200]!r}") from exc

    def alive(self) -> bool:
        """The pid exists, is not a zombie, and started when our supervisor did."""
        stat = _proc_stat(self.pid)
        return stat is not None and stat[0] not in "ZX" and int(stat[19]) == self.start_time


class LocalExecutor:
    """Runs each attempt as a local process tree; see the module docstring.

    ``timeout_grace_seconds`` is how long an attempt past its runtime limit gets between
    SIGTERM and SIGKILL. Supervisors this object started are reaped by a thread each.
    """

    name = "local"

    def __init__(self, state_dir: Path, *, timeout_grace_seconds: float = 10.0) -> None:
        self.state_dir = state_dir
        self.timeout_grace_seconds = timeout_grace_seconds
        self._exited: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, launch: Launch) -> Handle:
        if not launch.argv:
            raise ValueError("a launch needs a non-empty argv")
        folder = self._new_folder(launch.attempt_id)
        _write_private(folder / LAUNCH_FILE, self._describe(launch))
        with open(folder / "supervisor.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(SUPERVISOR), str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={},  # the supervisor needs nothing, and must not see the server's secrets
                cwd=folder,
                start_new_session=True,
            )
        stat = _proc_stat(process.pid)
        assert stat is not None, "an unreaped child always has /proc/<pid>/stat"
        supervisor = _Supervisor(process.pid, int(stat[19]), folder)
        self._reap_in_background(process, supervisor)
        return supervisor.to_handle()

    def status(self, handle: Handle) -> AttemptStatus:
        supervisor = _Supervisor.from_handle(handle)
        result = _read_result(supervisor.folder)
        if result is not None:
            return result
        if supervisor.alive():
            return AttemptStatus(AttemptState.RUNNING)
        # It may have written its result and exited between the two looks above.
        result = _read_result(supervisor.folder)
        if result is not None:
            return result
        reason = f"the supervisor of attempt {supervisor.folder.name} is gone without a result"
        return AttemptStatus(AttemptState.LOST, reason=reason)

    def wait(self, handle: Handle, timeout: float | None = None) -> AttemptStatus:
        supervisor = _Supervisor.from_handle(handle)
        with self._lock:
            exited = self._exited.get(supervisor.pid)
        if exited is not None:
            exited.wait(timeout)
        else:
            _wait_for_exit(supervisor, timeout)
        return self.status(handle)

    def stop(self, handle: Handle, grace_seconds: float = 10.0) -> None:
        supervisor = _Supervisor.from_handle(handle)
        if (supervisor.folder / RESULT_FILE).exists():
            return
        _write_private(supervisor.folder / STOP_FILE, {"grace_seconds": grace_seconds})
        # Before running.json exists the supervisor may not handle SIGTERM yet; it reads
        # stop.json after writing running.json, so the stop is not lost either way.
        if (supervisor.folder / RUNNING_FILE).exists():
            _signal_supervisor(supervisor)

    # -- helpers ------------------------------------------------------------------------

    def _new_folder(self, attempt_id: str) -> Path:
        """A new private folder per start, even if an attempt id is started twice."""
        name = f"{UNSAFE.sub('_', attempt_id)[:100]}-{secrets.token_hex(4)}"
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = self.state_dir / name
        folder.mkdir(mode=0o700)
        return folder

    def _describe(self, launch: Launch) -> dict[str, object]:
        return {
            "attempt_id": launch.attempt_id,
            "argv": list(launch.argv),
            "env": dict(launch.env),
            "cwd": str(launch.cwd),
            "log_path": str(launch.log_path),
            "cpus": launch.instance.cpus,
            "memory_mib": launch.instance.memory_mib,
            "gpus": launch.instance.gpus,
            "max_runtime_seconds": launch.max_runtime_seconds,
            "grace": self.timeout_grace_seconds,
        }

    def _reap_in_background(self, process: subprocess.Popen[bytes], sup: _Supervisor) -> None:
        exited = threading.Event()
        with self._lock:
            self._exited[sup.pid] = exited

        def reap() -> None:
            process.wait()
            with self._lock:
                self._exited.pop(sup.pid, None)
            exited.set()

        name = f"ketch-reap-{sup.folder.name}"
        threading.Thread(target=reap, name=name, daemon=True).start()


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3… of ``/proc/<pid>/stat`` (state first; start time at index 19), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return text[text.rindex(")") + 2 :].split()


def _read_result(folder: Path) -> AttemptStatus | None:
    try:
        data = json.loads((folder / RESULT_FILE).read_text())
    except FileNotFoundError:
        return None
    return AttemptStatus(AttemptState(data["state"]), data["exit_code"], data["reason"])


def _open_pidfd(supervisor: _Supervisor) -> int | None:
    """A pidfd for the supervisor, checked against its start time; None if it is gone.

    Raises OSError where pidfds are unavailable (old kernels, some sandboxes).
    """
    try:
        fd = os.pidfd_open(supervisor.pid)
    except ProcessLookupError:
        return None
    # Checked after opening: the fd now pins the process, so the check cannot go stale.
    if not supervisor.alive():
        os.close(fd)
        return None
    return fd


def _wait_for_exit(supervisor: _Supervisor, timeout: float | None) -> None:
    """Block until a supervisor we did not start ends, or ``timeout`` passes."""
    try:
        fd = _open_pidfd(supervisor)
    except OSError:
        _poll_for_result(supervisor, timeout)
        return
    if fd is None:
        return
    watcher = select.poll()
    watcher.register(fd, select.POLLIN)  # a pidfd turns readable when the process ends
    try:
        watcher.poll(None if timeout is None else timeout * 1000)
    finally:
        os.close(fd)


def _poll_for_result(supervisor: _Supervisor, timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    while supervisor.alive() and not (supervisor.folder / RESULT_FILE).exists():
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(POLL_SECONDS)


def _signal_supervisor(supervisor: _Supervisor) -> None:
    """SIGTERM the supervisor through a pidfd, so a reused pid is never signalled."""
    try:
        fd = _open_pidfd(supervisor)
    except OSError:
        if supervisor.alive():  # a tiny window for pid reuse remains without pidfds
            os.kill(supervisor.pid, signal.SIGTERM)
        return
    if fd is None:
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended since the pidfd was opened: nothing left to stop
    finally:
        os.close(fd)


def _write_private(path: Path, data: dict[str, object]) -> None:
    """Write JSON atomically, readable by the owner only from the first byte.

    Not fsynced: after a machine crash the attempt is gone anyway, and start latency counts.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(data, file)
    os.replace(temporary, path)
