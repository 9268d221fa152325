"""The executor's side of ``_zygote.py``: start the warm parent once, ask it for supervisors.

:meth:`Zygote.fork` answers ``None`` whenever the zygote cannot be reached or started
(another platform, a sandbox without pidfds or Unix sockets): the executor then starts the
supervisor as a process of its own, as it always could. Once a request is sent, a failure
is raised instead: the zygote may have forked a supervisor, and starting a second one for
the same attempt would run it twice.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ketch.core.files import locked

__all__ = ["Zygote"]

logger = logging.getLogger(__name__)

ZYGOTE = Path(__file__).with_name("_zygote.py")
SOCKET_NAME = "zygote.sock"
READY_SECONDS = 5.0
"""How long a starting zygote may take to listen (an interpreter start, on a loaded host)."""
REPLY_SECONDS = 10.0
RETRY_AFTER_FAILURE_SECONDS = 60.0
"""After the zygote could not be started, start supervisors on their own this long."""


class Zygote:
    """The warm parent of the supervisors of one executor state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._failed_at: float | None = None

    def fork(self, folder: Path) -> tuple[int, int] | None:
        """Have the zygote start the supervisor of ``folder``: its pid and start time, or
        None if there is no zygote to ask (nothing was started)."""
        connection = self._connect()
        if connection is None:
            return None
        with connection:
            connection.settimeout(REPLY_SECONDS)
            connection.sendall(f"{folder}\n".encode())
            reply = _read_line(connection)
        if reply.startswith("error "):
            raise OSError(f"the supervisor's zygote refused: {reply.removeprefix('error ')}")
        pid, start_time = reply.split()
        return int(pid), int(start_time)

    def _connect(self) -> socket.socket | None:
        connection = self._try_connect()
        if connection is not None:
            return connection
        with self._lock:
            if self._failed_at is not None:
                if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE_SECONDS:
                    return None
                self._failed_at = None
            with locked(self.state_dir / "zygote.lock"):
                connection = self._try_connect()  # another thread or process started one
                if connection is None and self._start():
                    connection = self._try_connect()
            if connection is None:
                self._failed_at = time.monotonic()
            return connection

    def _try_connect(self) -> socket.socket | None:
        if not (self.state_dir / SOCKET_NAME).exists():
            return None
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Through the folder's descriptor: a Unix socket path is limited to 108 bytes,
        # and a state folder may be longer.
        folder = os.open(self.state_dir, os.O_PATH | os.O_DIRECTORY)
        try:
            connection.connect(f"/proc/self/fd/{folder}/{SOCKET_NAME}")
        except OSError:
            connection.close()
            return None
        finally:
            os.close(folder)
        return connection

    def _start(self) -> bool:
        """Start a zygote (the caller holds the start lock); True once it listens."""
        (self.state_dir / SOCKET_NAME).unlink(missing_ok=True)  # a dead one's leftover
        with open(self.state_dir / "zygote.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(ZYGOTE), str(self.state_dir), str(os.getpid())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env={},  # as the supervisors it forks: none of the server's secrets
                cwd=self.state_dir,
                start_new_session=True,
            )
        assert process.stdout is not None
        with process.stdout:
            ready, _, _ = select.select([process.stdout], [], [], READY_SECONDS)
            answer = process.stdout.readline() if ready else b""
        threading.Thread(target=process.wait, name="ketch-zygote-reaper", daemon=True).start()
        if answer != b"ready\n":
            process.kill()
            logger.warning(
                "the supervisors' zygote in %s did not start; supervisors start on their own",
                self.state_dir,
            )
            return False
        return True


def _read_line(connection: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(4096)
        if not chunk:
            raise OSError("the supervisor's zygote closed the connection without an answer")
        data += chunk
    return data[:-1].decode()
