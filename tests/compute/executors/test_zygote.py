"""The supervisors' zygote: a warm parent that forks each attempt's supervisor.

It must never be something an attempt depends on: a supervisor it forked outlives it, a
dead one is replaced, one that cannot start leaves the executor starting supervisors on
their own, and it goes away with its owner or when idle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ketch.compute.executors import AttemptState, Launch
from ketch.compute.executors import _zygote as zygote
from ketch.compute.executors import _zygote_client as client
from ketch.compute.executors.local import LocalExecutor
from ketch.core.instances import INSTANCE_TYPES


@pytest.fixture(autouse=True)
def no_zygote_left(tmp_path: Path) -> Iterator[None]:
    """Whatever a test proves or fails to, the zygotes of its state folder end with it."""
    yield
    for pid in zygotes_of(tmp_path / "state"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def launch(tmp_path: Path, attempt_id: str, code: str = "pass") -> Launch:
    return Launch(
        attempt_id=attempt_id,
        argv=(sys.executable, "-c", code),
        env={"PATH": os.defpath},
        cwd=tmp_path,
        log_path=tmp_path / f"{attempt_id}.log",
        instance=INSTANCE_TYPES["cpu.small"],
        max_runtime_seconds=60,
    )


def zygotes_of(state: Path) -> list[int]:
    """Pids of live zygotes serving ``state``, from /proc: their command line names it.

    A supervisor the zygote forked has the same command line; it is told apart by its
    parent, which is the zygote.
    """
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ours = any(a.endswith(b"_zygote.py") for a in argv) and str(state).encode() in argv
        if ours and fields[0] not in "ZX":
            parents[int(entry.name)] = int(fields[1])
    return [pid for pid, parent in parents.items() if parent not in parents]


def wait_until(condition, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_supervisors_are_forked_by_one_zygote(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor = LocalExecutor(state)
    for n in range(3):
        handle = executor.start(launch(tmp_path, f"job-{n}"))
        assert executor.wait(handle, timeout=10).state is AttemptState.SUCCEEDED
    [zygote] = zygotes_of(state)
    assert (state / "zygote.sock").exists()
    assert oct((state / "zygote.sock").stat().st_mode & 0o777) == oct(0o600)
    os.kill(zygote, signal.SIGTERM)


def test_an_attempt_outlives_its_zygote_and_a_new_one_takes_over(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor = LocalExecutor(state)
    slow = "import time; time.sleep(1)"
    handle = executor.start(launch(tmp_path, "slow", slow))
    [zygote] = zygotes_of(state)

    os.kill(zygote, signal.SIGKILL)
    assert wait_until(lambda: not zygotes_of(state))

    assert executor.wait(handle, timeout=10).state is AttemptState.SUCCEEDED
    again = executor.start(launch(tmp_path, "after"))  # the stale socket is not in the way
    assert executor.wait(again, timeout=10).state is AttemptState.SUCCEEDED
    assert len(zygotes_of(state)) == 1


def test_a_zygote_that_cannot_start_leaves_supervisors_starting_on_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "ZYGOTE", tmp_path / "missing.py")
    state = tmp_path / "state"
    executor = LocalExecutor(state)
    handle = executor.start(launch(tmp_path, "cold"))
    assert executor.wait(handle, timeout=10).state is AttemptState.SUCCEEDED
    assert zygotes_of(state) == []


def test_the_zygote_goes_with_its_owner(tmp_path: Path) -> None:
    state = tmp_path / "state"
    owner = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from ketch.compute.executors import Launch
        from ketch.compute.executors.local import LocalExecutor
        from ketch.core.instances import INSTANCE_TYPES
        executor = LocalExecutor(Path({str(state)!r}))
        handle = executor.start(Launch(
            attempt_id="owned", argv=(sys.executable, "-c", "import time; time.sleep(1)"),
            env={{}}, cwd=Path({str(tmp_path)!r}), log_path=Path({str(tmp_path)!r}) / "o.log",
            instance=INSTANCE_TYPES["cpu.small"], max_runtime_seconds=60))
        print(handle, flush=True)
        """
    )
    handle = subprocess.run(
        [sys.executable, "-c", owner], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()

    assert wait_until(lambda: not zygotes_of(state)), "the zygote outlived its owner"
    # ... while the attempt it started ran on to its end
    assert LocalExecutor(state).wait(handle, timeout=10).state is AttemptState.SUCCEEDED


def test_the_zygote_refuses_a_folder_outside_its_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor = LocalExecutor(state)
    executor.wait(executor.start(launch(tmp_path, "warm-up")), timeout=10)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(str(state / "zygote.sock"))
        connection.sendall(f"{outside}\n".encode())
        reply = connection.recv(4096)
    assert reply.startswith(b"error "), reply
    assert list(outside.iterdir()) == []
    for pid in zygotes_of(state):
        os.kill(pid, signal.SIGTERM)


def test_a_leaving_zygote_answers_who_connected_and_spares_a_successors_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as successor,
    ):
        listener.bind(zygote.SOCKET_NAME)
        listener.listen(4)
        inode = os.stat(zygote.SOCKET_NAME).st_ino
        client.connect(str(tmp_path / zygote.SOCKET_NAME))
        client.sendall(f"{tmp_path.parent}\n".encode())  # waiting in the backlog
        os.unlink(zygote.SOCKET_NAME)
        successor.bind(zygote.SOCKET_NAME)  # a new zygote took the name meanwhile

        zygote._leave(listener, inode, str(tmp_path), lambda folder: 0, [])

        client.settimeout(5)
        assert client.recv(4096).startswith(b"error "), "the request was answered"
        assert os.stat(zygote.SOCKET_NAME).st_ino != inode, "the successor's socket stays"
