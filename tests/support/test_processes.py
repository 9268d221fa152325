"""The child-process helpers: a child runs in its own session, logs to its file, and is
stopped by its pid, with SIGKILL to its group when it ignores the polite signal."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from support.processes import LOOPBACK, free_port, spawn, stop_process, tail

# Prints its pid and a line on stderr, then ignores SIGTERM and sleeps.
_STUBBORN = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print(os.getpid(), flush=True)\n"
    "print('to stderr', file=sys.stderr, flush=True)\n"
    "time.sleep(60)\n"
)


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, port))


def test_a_child_that_ignores_sigterm_is_killed_with_its_group(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    process = spawn([sys.executable, "-c", _STUBBORN], log=log)
    try:
        assert os.getpgid(process.pid) == process.pid  # its own session and group
        deadline = time.monotonic() + 30
        while "to stderr" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, tail(log)
            time.sleep(0.01)
    finally:
        stop_process(process, timeout=0.5)
    assert process.returncode is not None and process.returncode < 0
    assert _gone(process.pid)
    assert tail(log).splitlines() == [str(process.pid), "to stderr"]
    stop_process(process, timeout=0.5)  # a second stop is harmless


def test_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert tail(log) == "(no log)"
    assert tail(None) == "(no log)"
    log.write_text("")
    assert tail(log) == "(empty log)"
    log.write_text("\n".join(str(i) for i in range(100)))
    assert tail(log, lines=3) == "97\n98\n99"
