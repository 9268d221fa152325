"""A warm parent for local supervisors: forks one per attempt instead of starting Python anew.

Starting ``python -I -S _supervisor.py`` costs an interpreter start (about 6 ms) on every
job; a fork of this small, already-started process costs a fraction of a millisecond.
:class:`~ketch.compute.executors.local.LocalExecutor` runs this file by path
(``python -I -S _zygote.py <state dir> <owner pid>``) in its own session, with an empty
environment, the first time it starts an attempt, and asks it over the Unix socket
``<state dir>/zygote.sock`` (0600, in the executor's 0700 folder; peers of another user
are refused) to start the supervisor of an attempt folder.

Each request is one line, the attempt folder (which must be directly inside the state
folder); the answer is one line, ``<pid> <start time>`` of the new supervisor, or
``error <text>``. The supervisor is forked, leads a new session, has its stdio on
``/dev/null`` and ``supervisor.log`` and then runs ``_supervisor.main`` exactly as if it
had been started on its own: the attempt never depends on this process. This process
reaps the supervisors it forked (through a pidfd each) and exits once its owner is gone or
after ``IDLE_SECONDS`` without a request; supervisors still running are then reaped by
init. Like the supervisor, it imports only a few stdlib modules and never ``ketch``. (A
forked supervisor keeps this program's command line: ``ps`` shows it under ``_zygote.py``,
as a child of the zygote until that exits.)
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Main = Callable[[str], int]

SOCKET_NAME = "zygote.sock"
IDLE_SECONDS = 30.0
"""Gone after this long without a request: a busy server keeps it warm, an idle one (or a
test's executor) leaves nothing running for long; the next start brings it back."""
MAX_REQUEST = 4096


def main(state_dir: str, owner_pid: int) -> int:
    os.chdir(state_dir)
    supervisor = _load_supervisor()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket file is 0600 from its first instant
    try:
        listener.bind(SOCKET_NAME)
    finally:
        os.umask(old_mask)
    listener.listen(64)
    socket_inode = os.stat(SOCKET_NAME).st_ino
    try:
        owner = os.pidfd_open(owner_pid)
    except ProcessLookupError:
        return 0  # the executor's process is gone already
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)  # the starter reads one line; nothing else goes there
    poller = select.poll()
    poller.register(listener.fileno(), select.POLLIN)
    poller.register(owner, select.POLLIN)
    children: dict[int, int] = {}  # pidfd -> pid
    while True:
        events = poller.poll(IDLE_SECONDS * 1000)
        if not events:
            break  # idle
        fds = {fd for fd, _ in events}
        for fd in fds & set(children):
            poller.unregister(fd)
            os.close(fd)
            _reap(children.pop(fd))
        if listener.fileno() in fds:  # served even when the owner just went
            child = _serve(listener, state_dir, supervisor, [owner, *children])
            if child is not None:
                pidfd = os.pidfd_open(child)
                children[pidfd] = child
                poller.register(pidfd, select.POLLIN)
        if owner in fds:
            break
    _leave(listener, socket_inode, state_dir, supervisor, [owner, *children])
    return 0


def _leave(
    listener: socket.socket, socket_inode: int, state_dir: str, supervisor: Main, keep: list[int]
) -> None:
    """Stop listening without dropping a request: the socket's name goes first (only if
    it is still ours, not a successor's), then whatever already connected is answered."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(SOCKET_NAME).st_ino == socket_inode:
            os.unlink(SOCKET_NAME)
    while select.select([listener], [], [], 0)[0]:
        _serve(listener, state_dir, supervisor, keep)
    listener.close()


def _serve(
    listener: socket.socket, state_dir: str, supervisor: Main, keep: list[int]
) -> int | None:
    """Answer one request; returns the pid of the supervisor it forked, if any."""
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(5.0)
        try:
            if not _same_user(connection):
                connection.sendall(b"error another user's request\n")
                return None
            folder = _read_line(connection)
            if os.path.dirname(os.path.realpath(folder)) != os.path.realpath(state_dir):
                connection.sendall(b"error the folder is not an attempt folder of this executor\n")
                return None
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the supervisor only
                listener.close()
                connection.close()
                for fd in keep:
                    os.close(fd)
                _become_supervisor(folder, supervisor)
            connection.sendall(f"{pid} {_start_time(pid)}\n".encode())
            return pid
        except OSError as exc:
            sys.stderr.write(f"zygote: a request failed: {exc}\n")
            return None


def _become_supervisor(folder: str, supervisor: Main) -> None:
    """In the forked child: a new session, fresh stdio, then the supervisor's main."""
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        log = os.open(
            os.path.join(folder, "supervisor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in (null, log):
            if fd > 2:
                os.close(fd)
        os.chdir(folder)
        code = supervisor(folder)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"supervisor failed to start: {exc!r}\n".encode(errors="replace"))
    os._exit(code)


def _same_user(connection: socket.socket) -> bool:
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return bool(uid == os.getuid())


def _read_line(connection: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(MAX_REQUEST)
        if not chunk or len(data) + len(chunk) > MAX_REQUEST:
            raise OSError("the request was cut short or too long")
        data += chunk
    return data[:-1].decode()


def _start_time(pid: int) -> int:
    """Field 22 of ``/proc/<pid>/stat``; the child is not reaped yet, so the pid is ours."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    return int(text[text.rindex(")") + 2 :].split()[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _load_supervisor() -> Main:
    """``_supervisor.py`` from beside this file (``-I`` leaves this folder off the path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_supervisor.py")
    namespace = {"__name__": "ketch_supervisor", "__file__": path}
    with open(path) as source:
        exec(compile(source.read(), path, "exec"), namespace)  # noqa: S102 - our own file
    main: Main = namespace["main"]  # type: ignore[assignment]
    return main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
