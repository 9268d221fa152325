"""The watcher of one Ray attempt: runs the local supervisor, and ends it when its actor dies.

:class:`~ketch.compute.executors.ray.RayExecutor` runs each attempt in a Ray actor; the
actor writes this file and ``_supervisor.py`` into a private folder on its node and runs
``python -I -S watch.py <folder>`` with two pipes: standard input, whose only writer is
the actor, and standard output, whose only writer is this watcher.

- The watcher forks at once and the first process exits: a Ray worker that dies kills
  its direct children, and this one must outlive the actor. The second process starts
  a session of its own and the supervisor in it.
- A byte on standard input is a stop: it is forwarded to the supervisor as SIGTERM with
  the local executor's rule, only once ``running.json`` exists (before that the
  supervisor reads the ``stop.json`` the actor wrote). The supervisor is this process's
  child, so no reused pid is ever signalled.
- The end of standard input means the actor is gone (``ray.kill``, the out-of-memory
  killer, a crashed worker): the watcher stops the attempt at once (``stop.json`` with
  no grace, then SIGTERM, after which the supervisor SIGKILLs the user's process group),
  so an attempt the cluster has lost never runs on beside its retry.
- The watcher's exit closes standard output: that is how the actor learns the end.

Like ``_supervisor.py`` it imports only the standard library and nothing from ketch: the
actor carries both files' text to nodes that need not have ketch installed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

RUNNING_FILE = "running.json"
STOP_FILE = "stop.json"
POLL_SECONDS = 0.05
"""How often the end of the supervisor is looked for where pidfds are unavailable."""


def main(folder: str) -> int:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    with open(os.path.join(folder, "supervisor.log"), "ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.join(folder, "supervisor.py"), folder],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={},
            cwd=folder,
        )

    def forward() -> None:
        if supervisor.returncode is None and os.path.exists(os.path.join(folder, RUNNING_FILE)):
            supervisor.send_signal(signal.SIGTERM)

    orphaned = _watch(supervisor, forward)
    if orphaned:
        _write_stop(folder)
        forward()
    supervisor.wait()
    if orphaned:  # nobody is left to read the result
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def _watch(supervisor: subprocess.Popen[bytes], forward: Callable[[], None]) -> bool:
    """Forward stops until the supervisor ends (False) or the actor dies first (True)."""
    try:
        pidfd: int | None = os.pidfd_open(supervisor.pid)
    except OSError:
        pidfd = None
    stdin = sys.stdin.fileno()
    watched = [stdin] + ([pidfd] if pidfd is not None else [])
    try:
        while supervisor.poll() is None:
            ready, _, _ = select.select(watched, [], [], None if pidfd else POLL_SECONDS)
            if stdin in ready:
                if not os.read(stdin, 4096):
                    return True
                forward()
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _write_stop(folder: str) -> None:
    """Stop with no grace: the attempt's owner is gone, so nobody waits for a clean end."""
    path = os.path.join(folder, STOP_FILE)
    temporary = f"{path}.watch.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump({"grace_seconds": 0}, file)
    os.replace(temporary, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
