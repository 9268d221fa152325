"""A process named by its pid *and* its start time, so that a reused pid is never taken
for it: the local executor's supervisors and the server's own Ray head."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Process", "proc_stat"]


def proc_stat(pid: int) -> list[str] | None:
    """Fields 3… of ``/proc/<pid>/stat`` (state first, start time at index 19), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return text[text.rindex(")") + 2 :].split()


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    start_time: int
    """Field 22 of ``/proc/<pid>/stat``: clock ticks after boot."""

    @classmethod
    def of(cls, pid: int) -> Process | None:
        """The process running as ``pid`` now, or None."""
        stat = proc_stat(pid)
        return None if stat is None else cls(pid, int(stat[19]))

    def alive(self) -> bool:
        """The pid exists, is not a zombie, and started when this process did."""
        stat = proc_stat(self.pid)
        return stat is not None and stat[0] not in "ZX" and int(stat[19]) == self.start_time

    def open_pidfd(self) -> int | None:
        """A pidfd pinned to this very process; None if it is gone.

        Raises OSError where pidfds are unavailable (old kernels, some sandboxes).
        """
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return None
        # Checked after opening: the fd now pins the process, so the check cannot go stale.
        if not self.alive():
            os.close(fd)
            return None
        return fd

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` through a pidfd, so a reused pid is never signalled; nothing if
        the process is gone."""
        try:
            fd = self.open_pidfd()
        except OSError:
            if self.alive():  # a tiny window for pid reuse remains without pidfds
                os.kill(self.pid, sig)
            return
        if fd is None:
            return
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            pass  # it ended since the pidfd was opened
        finally:
            os.close(fd)
