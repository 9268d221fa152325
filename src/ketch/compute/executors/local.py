"""Attempts as local processes, each under a supervisor that outlives the server.

``start`` creates the attempt's folder under ``state_dir``, named after the attempt id:
creating it is the once-check (a second start of the id raises :class:`AttemptExists`,
from any executor object), and a fresh executor finds it again by the id alone. It writes
the launch description there (``launch.json``, 0600: it holds the job's environment, and
the supervisor deletes it as soon as it has read it), starts ``_supervisor.py`` in a new
session and records the handle in ``handle.json``. The supervisor starts the user's
command, applies the instance type's limits, enforces the runtime limit and stops, and
writes ``result.json`` as its last act.

The handle is the supervisor's pid, its start time (so a reused pid is not taken for it)
and the folder, which is all a fresh executor needs after a server restart: ``result.json``
says how the attempt ended; a live supervisor means it is running; neither means it is
lost. A supervisor killed with SIGKILL leaves the user's processes behind (they live in
its session); they are killed before ``LOST`` is reported, and ``LOST`` is then recorded
in ``result.json`` like any other end.

``start`` holds an exclusive ``flock`` on ``start.lock`` from just after the folder exists
until ``handle.json`` is written. ``find`` takes the same lock when it sees a folder without
a handle: a start still under way finishes first, and a start that died (its lock died with
it) is recorded as lost. So an attempt id, once taken, is never reported as unstarted and
never started again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ketch.compute.executors import AttemptExists, AttemptState, AttemptStatus, Handle, Launch
from ketch.compute.executors._procs import Process, proc_stat
from ketch.compute.executors._zygote_client import Zygote
from ketch.core.files import locked, write_private_json

__all__ = ["LocalExecutor", "launch_description"]

SUPERVISOR = Path(__file__).with_name("_supervisor.py")
RESULT_FILE = "result.json"
RUNNING_FILE = "running.json"
STOP_FILE = "stop.json"
LAUNCH_FILE = "launch.json"
HANDLE_FILE = "handle.json"
START_LOCK = "start.lock"
POLL_SECONDS = 0.005
"""How often :meth:`LocalExecutor.wait` looks for a result when it cannot watch the process."""
ORPHAN_DEATH_SECONDS = 2.0
"""How long reporting a lost attempt waits for its SIGKILLed processes to be gone."""
UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class _Supervisor:
    """What a handle holds: the supervisor process and the attempt's folder.

    A pid of 0 stands for an attempt whose supervisor never ran (see :func:`_give_up`).
    """

    pid: int
    start_time: int
    folder: Path

    def to_handle(self) -> Handle:
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "start_time": self.start_time, "folder": str(self.folder)}

    @classmethod
    def from_handle(cls, handle: Handle) -> _Supervisor:
        try:
            data = json.loads(handle)
            return cls(int(data["pid"]), int(data["start_time"]), Path(data["folder"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a local executor handle: {handle[:200]!r}") from exc

    @property
    def process(self) -> Process:
        return Process(self.pid, self.start_time)

    def alive(self) -> bool:
        """The pid exists, is not a zombie, and started when our supervisor did."""
        return self.process.alive()


class LocalExecutor:
    """Runs each attempt as a local process tree; see the module docstring.

    ``timeout_grace_seconds`` is how long an attempt past its runtime limit gets between
    SIGTERM and SIGKILL. Supervisors this object started are reaped by a thread each.
    """

    name = "local"

    def __init__(
        self, state_dir: Path, *, timeout_grace_seconds: float = 10.0, warm_start: bool = True
    ) -> None:
        self.state_dir = state_dir
        self.timeout_grace_seconds = timeout_grace_seconds
        self.warm_start = warm_start
        self._zygote = Zygote(state_dir)
        self._exited: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, launch: Launch) -> Handle:
        if not launch.argv:
            raise ValueError("a launch needs a non-empty argv")
        folder = self._folder(launch.attempt_id)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            raise AttemptExists(f"attempt {launch.attempt_id!r} was started before") from None
        with locked(folder / START_LOCK):
            if (folder / RESULT_FILE).exists():
                # find() took the lock between our mkdir and our lock: it gave the start up.
                raise AttemptExists(f"attempt {launch.attempt_id!r} was given up before it ran")
            try:
                description = launch_description(launch, self.timeout_grace_seconds)
                # Attempt files are never fsynced: a machine crash ends the attempt anyway,
                # and every fsync would add to the job's start latency.
                write_private_json(folder / LAUNCH_FILE, description, sync=False)
                supervisor, process = self._spawn(folder)
            except BaseException as exc:
                _give_up_quietly(folder, f"its supervisor could not be started: {exc}")
                raise
            try:
                write_private_json(folder / HANDLE_FILE, supervisor.to_dict(), sync=False)
            except BaseException as exc:
                # Nobody could find this attempt again, so it must not run at all.
                supervisor.process.signal(signal.SIGKILL)
                if process is not None:
                    process.wait()
                _end_orphans(supervisor)
                _give_up_quietly(folder, f"its handle could not be recorded: {exc}")
                raise
        if process is not None:
            self._reap_in_background(process, supervisor)
        return supervisor.to_handle()

    def find(self, attempt_id: str) -> Handle | None:
        folder = self._folder(attempt_id)
        if not folder.is_dir():
            return None
        handle = _read_handle(folder)
        if handle is not None:
            return handle
        with locked(folder / START_LOCK):  # a start still under way finishes first
            handle = _read_handle(folder)
            if handle is None:
                handle = _give_up(folder, "its start ended before the supervisor ran")
        return handle

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
        # Gone without a result: killed, so it can never write one. End what it left.
        killed = _end_orphans(supervisor)
        reason = f"the supervisor of attempt {supervisor.folder.name} is gone without a result"
        if killed:
            reason += f"; the {killed} process(es) it left running were killed"
        (supervisor.folder / LAUNCH_FILE).unlink(missing_ok=True)  # it may hold secrets
        _write_result(supervisor.folder, AttemptState.LOST, reason)
        return AttemptStatus(AttemptState.LOST, reason=reason)

    def wait(self, handle: Handle, timeout: float | None = None) -> AttemptStatus:
        supervisor = _Supervisor.from_handle(handle)
        if (supervisor.folder / RESULT_FILE).exists():
            return self.status(handle)
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
        write_private_json(
            supervisor.folder / STOP_FILE, {"grace_seconds": grace_seconds}, sync=False
        )
        # Before running.json exists the supervisor may not handle SIGTERM yet; it reads
        # stop.json after writing running.json, so the stop is not lost either way.
        if (supervisor.folder / RUNNING_FILE).exists():
            supervisor.process.signal()

    # -- helpers ------------------------------------------------------------------------

    def _folder(self, attempt_id: str) -> Path:
        """The attempt's folder: always the same for one id, never the same for two (a
        readable prefix, then a digest of the exact id)."""
        digest = hashlib.sha256(attempt_id.encode(errors="surrogatepass")).hexdigest()[:24]
        return self.state_dir / f"{UNSAFE.sub('_', attempt_id)[:80]}-{digest}"

    def _spawn(self, folder: Path) -> tuple[_Supervisor, subprocess.Popen[bytes] | None]:
        """The attempt's supervisor, forked by the warm zygote where it can be (the Popen
        is then None: the zygote reaps it), else started as a process of its own."""
        if self.warm_start:
            forked = self._zygote.fork(folder)
            if forked is not None:
                pid, start_time = forked
                return _Supervisor(pid, start_time, folder), None
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
        stat = proc_stat(process.pid)
        assert stat is not None, "an unreaped child always has /proc/<pid>/stat"
        return _Supervisor(process.pid, int(stat[19]), folder), process

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


def launch_description(launch: Launch, grace_seconds: float) -> dict[str, object]:
    """What the supervisor reads from ``launch.json`` (the Ray executor's too: its actors
    run the same supervisor)."""
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
        "grace": grace_seconds,
    }


def _read_handle(folder: Path) -> Handle | None:
    """The handle recorded in the folder, in the one form ``start`` returned it."""
    try:
        text = (folder / HANDLE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return _Supervisor.from_handle(text).to_handle()


def _read_result(folder: Path) -> AttemptStatus | None:
    try:
        data = json.loads((folder / RESULT_FILE).read_text())
    except FileNotFoundError:
        return None
    return AttemptStatus(AttemptState(data["state"]), data["exit_code"], data["reason"])


def _write_result(folder: Path, state: AttemptState, reason: str) -> None:
    write_private_json(
        folder / RESULT_FILE,
        {"exit_code": None, "state": state.value, "reason": reason},
        sync=False,
    )


def _give_up(folder: Path, why: str) -> Handle:
    """Record an attempt whose supervisor never ran as lost; its handle (pid 0) says so."""
    (folder / LAUNCH_FILE).unlink(missing_ok=True)
    _write_result(folder, AttemptState.LOST, f"attempt {folder.name} never ran: {why}")
    never = _Supervisor(0, 0, folder)
    write_private_json(folder / HANDLE_FILE, never.to_dict(), sync=False)
    return never.to_handle()


def _give_up_quietly(folder: Path, why: str) -> None:
    """:func:`_give_up` while another error is on its way up (``find`` retries it)."""
    try:  # noqa: SIM105 - spelled out: the original error matters, this one does not
        _give_up(folder, why)
    except OSError:
        pass


def _end_orphans(supervisor: _Supervisor) -> int:
    """SIGKILL what a supervisor that died without a result left running; how many.

    The supervisor led its own session, and the user's processes stay in it (unless they
    call ``setsid`` themselves). While one of them lives, the kernel does not give the
    session's id, the supervisor's pid, to a new process; so if a process other than our
    supervisor has that pid now, the session is empty and nothing here is ours.
    """
    if supervisor.pid <= 0:
        return 0
    holder = proc_stat(supervisor.pid)
    if holder is not None and int(holder[19]) != supervisor.start_time:
        return 0
    pinned: list[int] = []
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (supervisor.pid, os.getpid()):
            continue
        pid = int(entry)
        if not _in_session(pid, supervisor):
            continue
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        except OSError:  # no pidfds here: a tiny window for pid reuse remains
            killed += _kill(pid)
            continue
        # Checked again now that the fd pins the process: the pid cannot have moved on.
        if _in_session(pid, supervisor) and _kill(pid, fd):
            killed += 1
            pinned.append(fd)
        else:
            os.close(fd)
    _await_deaths(pinned)
    return killed


def _in_session(pid: int, supervisor: _Supervisor) -> bool:
    """``pid`` is a live process of the supervisor's session, started after it."""
    stat = proc_stat(pid)
    return (
        stat is not None
        and stat[0] not in "ZX"
        and int(stat[3]) == supervisor.pid
        and int(stat[19]) >= supervisor.start_time
    )


def _kill(pid: int, pidfd: int | None = None) -> bool:
    """SIGKILL ``pid`` (through ``pidfd`` if given); False if it had already ended."""
    try:
        if pidfd is None:
            os.kill(pid, signal.SIGKILL)
        else:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _await_deaths(pidfds: list[int]) -> None:
    """Wait (at most :data:`ORPHAN_DEATH_SECONDS`) until every pinned process has ended."""
    watcher = select.poll()
    for fd in pidfds:
        watcher.register(fd, select.POLLIN)
    waiting = set(pidfds)
    deadline = time.monotonic() + ORPHAN_DEATH_SECONDS
    try:
        while waiting and (left := deadline - time.monotonic()) > 0:
            for fd, _ in watcher.poll(left * 1000):
                watcher.unregister(fd)
                waiting.discard(fd)
    finally:
        for fd in pidfds:
            os.close(fd)


def _wait_for_exit(supervisor: _Supervisor, timeout: float | None) -> None:
    """Block until a supervisor we did not start ends, or ``timeout`` passes."""
    try:
        fd = supervisor.process.open_pidfd()
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
