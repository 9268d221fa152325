"""Attempts on a Ray cluster: one detached, named actor per attempt.

The actor (``_ray_actor.py``) asks Ray for the instance type's CPUs, memory and GPUs and,
once placed on a node, runs the local executor's supervisor there under a watcher
(``_ray_watch.py``): the same process group, exact environment, log file, limits,
runtime limit and stop as :class:`~ketch.compute.executors.local.LocalExecutor`. An
actor that dies takes its attempt's processes with it (its watcher stops them). The
node must see the job's root and log at the same paths as the server (a shared
filesystem) and have the launch's interpreter; it needs Ray, but not ketch (the actor's
code travels with it). With GPUs, the attempt's environment also gets the
``CUDA_VISIBLE_DEVICES`` Ray assigned.

What a restarted server needs lives in the cluster, in Ray's key-value store (namespace
``jobs.ray.namespace``), not in the server:

- ``attempt/<id>``: written once by :meth:`RayExecutor.start` (the once-check, atomic in
  the GCS: a second start raises :class:`AttemptExists`); :meth:`RayExecutor.find` reads it;
- ``began/<id>``: ``ran`` when the actor starts the attempt, or ``given-up`` when the
  executor abandons a start that never began (a stop, or an actor gone before it ran);
  whichever comes first wins, so an abandoned start never runs;
- ``result/<id>``: how the attempt ended, written once (by the actor, or as ``LOST`` by
  the executor when the actor vanished without one).

So a handle (the attempt id and namespace) is all a fresh executor needs: a result says
how it ended; a live actor named after the attempt means it is running (or waiting for
resources); neither means the cluster lost it (``LOST``). A cluster that loses its GCS
state (a restart without GCS fault tolerance) forgets its attempts: their handles report
``LOST`` and ``find`` no longer knows their ids.

The server is never a Ray driver itself (Ray ends a driver whose GCS is unreachable for
a minute, and configures its client through the process environment only): the Ray calls
run in a child process, ``_ray_driver.py``, one per cluster and server process, shared by
its executors and started again if it dies. This module never imports Ray.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ketch.compute.executors import AttemptExists, AttemptState, AttemptStatus, Handle, Launch
from ketch.compute.executors._ray_head import LOOPBACK, LocalRayHead, ray_environment
from ketch.compute.executors.local import launch_description
from ketch.core.errors import BackendUnavailable
from ketch.core.files import write_private_text
from ketch.core.settings import RaySettings

__all__ = ["RayExecutor", "ray_available"]

logger = logging.getLogger(__name__)

DRIVER = Path(__file__).with_name("_ray_driver.py")
READY_SECONDS = 120.0
"""How long the driver process may take to import Ray and connect."""
RETRY_SECONDS = 30.0
"""After a failed connection, calls fail at once for this long instead of each waiting."""
CALL_SECONDS = 60.0
"""How long a quick call (all but ``wait``) may take before the cluster counts as away."""
LOOPBACK_HOSTS = (LOOPBACK, "localhost", "::1")


def ray_available() -> bool:
    """Whether the ``ray`` package is installed."""
    return importlib.util.find_spec("ray") is not None


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What a handle holds."""

    attempt_id: str
    namespace: str

    def to_handle(self) -> Handle:
        return json.dumps({"attempt_id": self.attempt_id, "namespace": self.namespace})

    @classmethod
    def from_handle(cls, handle: Handle) -> _Attempt:
        try:
            data = json.loads(handle)
            return cls(str(data["attempt_id"]), str(data["namespace"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a Ray executor handle: {handle[:200]!r}") from exc


class RayExecutor:
    """Runs each attempt as a Ray actor; see the module docstring.

    ``address`` is the cluster's GCS (``host:port``) and ``token_file`` holds its
    authentication token. ``timeout_grace_seconds`` is how long an attempt past its
    runtime limit gets between SIGTERM and SIGKILL. Connects on construction (raising
    :class:`BackendUnavailable` if it cannot).
    """

    name = "ray"

    def __init__(
        self,
        address: str,
        token_file: Path,
        *,
        namespace: str = "ketch",
        timeout_grace_seconds: float = 10.0,
    ) -> None:
        _require_ray()
        self.address = address
        self.namespace = namespace
        self.timeout_grace_seconds = timeout_grace_seconds
        self._driver = _driver_for(address, token_file, namespace)
        self._driver.ensure()

    @classmethod
    def from_settings(
        cls, settings: RaySettings, state_dir: Path, *, timeout_grace_seconds: float = 10.0
    ) -> RayExecutor:
        """The executor for ``jobs.ray``: on the configured cluster, or on a local head of
        ketch's own (started in ``state_dir / "head"`` unless one runs there already)."""
        _require_ray()
        token = settings.token.get_secret_value() if settings.token else None
        if settings.address is None:
            head = LocalRayHead(
                state_dir / "head",
                cpus=settings.cpus,
                memory_mib=settings.memory_mib,
                gpus=settings.gpus,
                token=token,
            )
            address, token_file = head.ensure(), head.token_file
        else:
            assert token is not None, "settings refuse an address without a token"
            address, token_file = settings.address, state_dir / "auth_token"
            write_private_text(token_file, token)
        return cls(
            address,
            token_file,
            namespace=settings.namespace,
            timeout_grace_seconds=timeout_grace_seconds,
        )

    # -- the Executor protocol ----------------------------------------------------------

    def start(self, launch: Launch) -> Handle:
        if not launch.argv:
            raise ValueError("a launch needs a non-empty argv")
        instance = launch.instance
        resources = {"cpus": instance.cpus, "gpus": instance.gpus}
        resources["memory_mib"] = instance.memory_mib
        self._call(
            "start",
            launch.attempt_id,
            launch=launch_description(launch, self.timeout_grace_seconds),
            resources=resources,
        )
        return _Attempt(launch.attempt_id, self.namespace).to_handle()

    def find(self, attempt_id: str) -> Handle | None:
        if not self._call("find", attempt_id):
            return None
        return _Attempt(attempt_id, self.namespace).to_handle()

    def status(self, handle: Handle) -> AttemptStatus:
        attempt = _Attempt.from_handle(handle)
        return _status(self._call("status", attempt.attempt_id, namespace=attempt.namespace))

    def wait(self, handle: Handle, timeout: float | None = None) -> AttemptStatus:
        attempt = _Attempt.from_handle(handle)
        limit = None if timeout is None else timeout + CALL_SECONDS
        found = self._call(
            "wait", attempt.attempt_id, namespace=attempt.namespace, timeout=timeout, limit=limit
        )
        return _status(found)

    def stop(self, handle: Handle, grace_seconds: float = 10.0) -> None:
        attempt = _Attempt.from_handle(handle)
        self._call(
            "stop", attempt.attempt_id, namespace=attempt.namespace, grace_seconds=grace_seconds
        )

    # -- helpers ------------------------------------------------------------------------

    def _call(
        self,
        op: str,
        attempt_id: str,
        *,
        namespace: str | None = None,
        limit: float | None = CALL_SECONDS,
        **args: Any,
    ) -> Any:
        request = {"namespace": namespace or self.namespace, "attempt_id": attempt_id, **args}
        kind, value = self._driver.call(op, request, limit)
        if kind == "ok":
            return value
        error, message = value
        if error == "AttemptExists":
            raise AttemptExists(message)
        raise BackendUnavailable(f"the Ray cluster at {self.address}: {op} failed: {message}")


def _status(found: dict[str, Any]) -> AttemptStatus:
    state = AttemptState(found["state"])
    if state is AttemptState.RUNNING:
        return AttemptStatus(state)
    return AttemptStatus(state, found["exit_code"], found["reason"])


def _require_ray() -> None:
    if not ray_available():
        raise BackendUnavailable(
            "jobs.executor is 'ray', but Ray is not installed; install it with "
            "pip install 'ketch[ray]'"
        )


# -- the driver process --------------------------------------------------------------------

_drivers: dict[tuple[str, str], _DriverProcess] = {}
_drivers_lock = threading.Lock()


def _driver_for(address: str, token_file: Path, namespace: str) -> _DriverProcess:
    """The driver process of this cluster and token, shared by every executor of it."""
    with _drivers_lock:
        key = (address, str(token_file))
        if key not in _drivers:
            _drivers[key] = _DriverProcess(address, token_file, namespace)
        return _drivers[key]


class _DriverProcess:
    """``_ray_driver.py`` as a child process: requests out, answers in (see its docstring).

    A reader thread hands each answer to the call waiting for it. If the child dies,
    every waiting call fails with :class:`BackendUnavailable`, and the next call starts
    a new child.
    """

    def __init__(self, address: str, token_file: Path, namespace: str) -> None:
        self.address = address
        self.token_file = token_file
        self.namespace = namespace
        self.log_path = token_file.with_name("ray-driver.log")
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._pending: dict[int, Future[tuple[str, Any]]] = {}
        self._next_id = 1
        self._failure: tuple[float, str] | None = None

    def ensure(self) -> None:
        """Start the child unless it runs; wait until it has connected."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            self._start()

    def call(self, op: str, args: dict[str, Any], limit: float | None) -> tuple[str, Any]:
        """``("ok", value)`` or ``("error", [type, message])``; :class:`BackendUnavailable`
        if the child dies or ``limit`` seconds pass first."""
        answer: Future[tuple[str, Any]] = Future()
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            process = self._process
            assert process is not None and process.stdin is not None
            pending = self._pending  # this child's calls: a successor has its own
            request_id, self._next_id = self._next_id, self._next_id + 1
            pending[request_id] = answer
            try:
                process.stdin.write(json.dumps({"id": request_id, "op": op, "args": args}) + "\n")
                process.stdin.flush()
            except OSError:
                pending.pop(request_id, None)
                raise self._gone() from None
        try:
            return answer.result(timeout=limit)
        except TimeoutError:
            with self._lock:
                pending.pop(request_id, None)
            raise BackendUnavailable(
                f"the Ray cluster at {self.address} did not answer {op} in {limit:g} s"
            ) from None

    def _start(self) -> None:
        """Start the child and wait until it has connected; the lock is held."""
        if self._failure is not None and time.monotonic() < self._failure[0] + RETRY_SECONDS:
            raise BackendUnavailable(f"{self._failure[1]} (tried again after {RETRY_SECONDS:g} s)")
        try:
            self._connect()
        except BackendUnavailable as exc:
            self._failure = (time.monotonic(), exc.message)
            raise
        self._failure = None

    def _connect(self) -> None:
        host = self.address.rpartition(":")[0].strip("[]")
        environment = ray_environment(self.token_file, loopback=host in LOOPBACK_HOSTS)
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-I", str(DRIVER), self.address, self.namespace],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=environment,
                text=True,
                encoding="utf-8",
                start_new_session=True,  # a Ctrl-C of the server is the server's to handle
            )
        assert process.stdout is not None
        ready: Future[tuple[str, Any]] = Future()
        pending: dict[int, Future[tuple[str, Any]]] = {}
        self._pending = pending
        self._process = process
        reader = threading.Thread(
            target=self._read,
            args=(process, process.stdout, ready, pending),
            name="ketch-ray-driver",
            daemon=True,
        )
        reader.start()
        try:
            kind, value = ready.result(timeout=READY_SECONDS)
        except (TimeoutError, BackendUnavailable):
            process.kill()
            process.wait()
            raise self._gone() from None
        if kind != "ok":
            process.wait()
            raise BackendUnavailable(
                f"cannot connect to the Ray cluster at {self.address}: {value[1]}"
            )
        logger.info("connected to the Ray cluster at %s (driver pid %d)", self.address, process.pid)

    def _read(
        self,
        process: subprocess.Popen[str],
        answers: IO[str],
        ready: Future[tuple[str, Any]],
        pending: dict[int, Future[tuple[str, Any]]],
    ) -> None:
        """Hand out answers; the first line (id 0) says whether the child connected.

        ``ready`` is not among the pending calls: :meth:`_start` waits for it holding the
        lock that guards them. ``pending`` holds this child's calls only, so when it dies
        the calls already sent to its successor are not failed with it.
        """
        for line in answers:
            answer = json.loads(line)
            if answer["id"] == 0:
                waiting: Future[tuple[str, Any]] | None = ready
            else:
                with self._lock:
                    waiting = pending.pop(answer["id"], None)
            if waiting is not None:
                kind = "ok" if "ok" in answer else "error"
                waiting.set_result((kind, answer.get("ok", answer.get("error"))))
        process.wait()
        if not ready.done():
            ready.set_exception(self._gone())
            return
        with self._lock:
            lost_calls = list(pending.values())
            pending.clear()
        for lost in lost_calls:
            lost.set_exception(self._gone())
        logger.warning("the Ray driver process (pid %d) ended", process.pid)

    def _gone(self) -> BackendUnavailable:
        """Unreachable, with the end of the driver's log (which only grows: read its tail)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(log.seek(0, io.SEEK_END) - 1500, 0))
                tail = log.read().decode(errors="replace")
        except OSError:
            tail = ""
        return BackendUnavailable(f"the Ray cluster at {self.address} is unreachable:\n{tail}")
