"""Where a job attempt runs: one interface, a local-process backend and a Ray backend.

An executor receives a :class:`Launch` (the argv, the complete environment, the job
root, the log file, the instance type and the runtime limit) and runs it; the scheduler
keeps the :class:`Handle` it returns in the database, so that after the server restarts
it can ask again about an attempt that outlived it. Every executor passes
``tests/compute/executors/test_conformance.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from ketch.core.instances import InstanceType

__all__ = ["AttemptExists", "AttemptState", "AttemptStatus", "Executor", "Handle", "Launch"]


@dataclass(frozen=True, slots=True)
class Launch:
    """One attempt of a job, as an executor receives it."""

    attempt_id: str
    """Unique per attempt (job id and attempt number); names the attempt's processes."""
    argv: tuple[str, ...]
    """Run as given, never through a shell."""
    env: Mapping[str, str]
    """The complete environment: the executor adds nothing to it and inherits nothing."""
    cwd: Path
    log_path: Path
    """Standard output and standard error are appended here as they are written."""
    instance: InstanceType
    max_runtime_seconds: int


class AttemptState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    """Exit status 0."""
    FAILED = "failed"
    """A non-zero exit or a signal: the user's code failed."""
    STOPPED = "stopped"
    """Stopped on request."""
    TIMED_OUT = "timed_out"
    """Ran past ``max_runtime_seconds`` and was stopped."""
    LOST = "lost"
    """The executor no longer knows the attempt (its machine or runtime went away)."""


@dataclass(frozen=True, slots=True)
class AttemptStatus:
    state: AttemptState
    exit_code: int | None = None
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.state is not AttemptState.RUNNING


class AttemptExists(Exception):
    """:meth:`Executor.start` was given an attempt id it had started before."""


Handle = str
"""An executor's own reference to an attempt, kept in the database (JSON text)."""


class Executor(Protocol):
    """Runs attempts; every method returns quickly except :meth:`wait`."""

    name: str

    def start(self, launch: Launch) -> Handle:
        """Start the attempt and return at once.

        An attempt id starts at most once: starting it again raises :class:`AttemptExists`
        (so a controller that crashed mid-start can never cause a second run of it).
        """
        ...

    def find(self, attempt_id: str) -> Handle | None:
        """The handle of the attempt started under ``attempt_id``, or None if none was.

        Works from a fresh executor after a restart: a controller that took over a job
        whose start was never recorded re-attaches to the attempt instead of running it
        twice.
        """
        ...

    def status(self, handle: Handle) -> AttemptStatus:
        """Where the attempt is now; works from a fresh executor after a restart."""
        ...

    def wait(self, handle: Handle, timeout: float | None = None) -> AttemptStatus:
        """Block until the attempt finishes or ``timeout`` seconds pass."""
        ...

    def stop(self, handle: Handle, grace_seconds: float = 10.0) -> None:
        """Ask the attempt to end (SIGTERM), and end it (SIGKILL) after ``grace_seconds``;
        returns at once. Stopping a finished attempt does nothing."""
        ...
