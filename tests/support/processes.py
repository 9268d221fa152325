"""Child processes for the test helpers that run a real server (PostgreSQL, the OIDC
provider, ``ketch server``): a free loopback port, a child started in its own session with
its output appended to a log file, stopping it by its pid, and the tail of its log.

A child in its own session is its own process group (group id = its pid): a Ctrl-C in
the terminal does not reach it, and the group can be killed as a last resort without
touching anything else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

__all__ = ["LOOPBACK", "ChildProcessHelper", "free_port", "spawn", "stop_process", "tail"]

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that was free a moment ago (another process may take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def spawn(
    argv: Sequence[str], *, log: Path, stdout: int | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with stdin closed and stderr appended to ``log``.

    Stdout goes to ``log`` as well unless ``stdout`` says otherwise (``subprocess.PIPE``
    to read from it). Further keyword arguments (``cwd``, ``env``, ``user`` …) go to
    :class:`subprocess.Popen`.
    """
    with log.open("ab") as sink:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink if stdout is None else stdout,
            stderr=sink,
            start_new_session=True,
            **popen,
        )


def stop_process(
    process: subprocess.Popen[bytes], *, timeout: float, sig: int = signal.SIGTERM
) -> None:
    """Send ``sig`` to a child started by :func:`spawn` and wait up to ``timeout`` seconds
    for it to exit; then SIGKILL its process group and reap it. Nothing if it has exited.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Not reaped yet, so its pid (= its group id) still belongs to it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class ChildProcessHelper(ABC):
    """A helper that owns one child process: ``with helper:`` starts and stops it."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None:
        """Stop the child and clean up; safe to call more than once."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
