"""The Ray actor that runs one attempt on a node: the local supervisor, under a watcher.

:class:`~ketch.compute.executors.ray.RayExecutor` creates one detached, named actor per
attempt, holding the instance type's CPUs, memory and GPUs while it lives. The actor's
constructor claims the attempt's ``began`` key in the cluster's key-value store (so a
start that the executor gave up, see ``ray.py``, never runs) and starts the attempt:
``_ray_watch.py`` (detached from the worker) in a private folder (mode 0700) on the node, which
runs ``_supervisor.py``, which runs the user's argv with the launch's exact environment,
working directory, log file, limits and runtime limit, as the local executor does.

When the supervisor has written ``result.json`` the actor copies it to the ``result`` key,
removes the folder and exits, which gives its resources back to the cluster. The key
outlives the actor: it is how a restarted server learns how the attempt ended.

This module imports only the standard library (``ray`` inside methods, on the node): the
driver (``_ray_driver.py``) loads it by path and sends it by value, so nodes need Ray,
but not ketch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Any

__all__ = ["AttemptActor", "actor_name", "began_key", "claim_key", "result_key"]

RESULT_FILE = "result.json"
STOP_FILE = "stop.json"
LAUNCH_FILE = "launch.json"
UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
RAN = b"ran"
"""The value of the ``began`` key once an actor has started the attempt."""


def actor_name(attempt_id: str) -> str:
    """The attempt's actor: a readable prefix, then a digest of the exact id."""
    digest = hashlib.sha256(attempt_id.encode(errors="surrogatepass")).hexdigest()
    return f"attempt-{UNSAFE.sub('_', attempt_id)[:80]}-{digest[:24]}"


def claim_key(attempt_id: str) -> str:
    return f"attempt/{attempt_id}"


def began_key(attempt_id: str) -> str:
    return f"began/{attempt_id}"


def result_key(attempt_id: str) -> str:
    return f"result/{attempt_id}"


class AttemptActor:
    """One attempt on one node; made a Ray actor by ``ray.remote`` in ``ray.py``.

    ``launch`` is the supervisor's ``launch.json`` (argv, env, cwd, log path, limits and
    grace); ``files`` maps file names to the text of ``_supervisor.py`` and
    ``_ray_watch.py``.
    """

    def __init__(
        self, namespace: str, attempt_id: str, launch: dict[str, Any], files: dict[str, str]
    ) -> None:
        import ray
        from ray.experimental import internal_kv

        self._namespace = namespace
        self._attempt_id = attempt_id
        self._done = threading.Event()
        self._status: dict[str, Any] | None = None
        if internal_kv._internal_kv_put(
            began_key(attempt_id), RAN, overwrite=False, namespace=namespace
        ):
            # The executor gave this start up (a stop before it began, or a lost start):
            # failing the constructor ends the actor without running anything.
            raise RuntimeError(f"attempt {attempt_id!r} was given up before it began")
        self._self = ray.get_runtime_context().current_actor
        self._folder = tempfile.mkdtemp(prefix="ketch-attempt-")
        try:
            self._commands, self._ended = self._start(launch, files)
        except BaseException as exc:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._finish({"exit_code": None, "state": "lost", "reason": f"not started: {exc}"})
            raise
        threading.Thread(target=self._follow, name="ketch-attempt", daemon=True).start()

    # -- called by the executor ---------------------------------------------------------

    def outcome(self, timeout: float) -> dict[str, Any] | None:
        """The attempt's result once it has one, waiting up to ``timeout`` seconds."""
        self._done.wait(timeout)
        return self._status

    def stop(self, grace_seconds: float) -> None:
        """The local executor's stop: ``stop.json``, then SIGTERM through the watcher."""
        if self._done.is_set() or os.path.exists(os.path.join(self._folder, RESULT_FILE)):
            return
        _write_private(os.path.join(self._folder, STOP_FILE), {"grace_seconds": grace_seconds})
        with contextlib.suppress(BrokenPipeError):  # the watcher has ended: so has the attempt
            os.write(self._commands, b"s")

    def exit(self) -> None:
        import ray

        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    # -- on the node --------------------------------------------------------------------

    def _start(self, launch: dict[str, Any], files: dict[str, str]) -> tuple[int, int]:
        """Start the watcher; the write end of its commands and the read end of its end."""
        import ray

        if launch["gpus"] and "CUDA_VISIBLE_DEVICES" not in launch["env"]:
            # The one variable added to the launch's environment: the GPUs Ray gave this
            # actor, so that attempts sharing a node do not share GPUs.
            gpus = ",".join(str(gpu) for gpu in ray.get_gpu_ids())
            launch = {**launch, "env": {**launch["env"], "CUDA_VISIBLE_DEVICES": gpus}}
        for name, text in files.items():
            with open(os.path.join(self._folder, name), "w", encoding="utf-8") as file:
                file.write(text)
        _write_private(os.path.join(self._folder, LAUNCH_FILE), launch)
        commands_read, commands = os.pipe()
        ended, ended_write = os.pipe()
        try:
            with open(os.path.join(self._folder, "watch.log"), "ab") as log:
                # The watcher forks and this child exits at once; see _ray_watch.py.
                watch = os.path.join(self._folder, "watch.py")
                subprocess.run(
                    [sys.executable, "-I", "-S", watch, self._folder],
                    stdin=commands_read,
                    stdout=ended_write,
                    stderr=log,
                    env={},  # neither needs anything, and the worker's may hold secrets
                    cwd=self._folder,
                    check=True,
                )
        except BaseException:
            os.close(commands)
            os.close(ended)
            raise
        finally:
            os.close(commands_read)
            os.close(ended_write)
        return commands, ended

    def _follow(self) -> None:
        """Wait for the watcher; record the result, clean up and end the actor."""
        while os.read(self._ended, 4096):
            pass  # the watcher writes nothing: the end of the pipe is its exit
        os.close(self._ended)
        try:
            with open(os.path.join(self._folder, RESULT_FILE), encoding="utf-8") as file:
                status = json.load(file)
        except (OSError, ValueError):
            reason = f"the supervisor of attempt {self._attempt_id} ended without a result"
            status = {"exit_code": None, "state": "lost", "reason": reason}
        self._finish(status)
        shutil.rmtree(self._folder, ignore_errors=True)
        os.close(self._commands)
        self._self.exit.remote()

    def _finish(self, status: dict[str, Any]) -> None:
        from ray.experimental import internal_kv

        # First writer wins: a result the executor recorded (a loss) is never replaced.
        internal_kv._internal_kv_put(
            result_key(self._attempt_id),
            json.dumps(status).encode(),
            overwrite=False,
            namespace=self._namespace,
        )
        stored = internal_kv._internal_kv_get(
            result_key(self._attempt_id), namespace=self._namespace
        )
        self._status = json.loads(stored) if stored else status
        self._done.set()


def _write_private(path: str, data: dict[str, Any]) -> None:
    """JSON readable by the owner only from the first byte, replaced atomically."""
    temporary = f"{path}.actor.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(data, file)
    os.replace(temporary, path)
