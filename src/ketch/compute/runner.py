"""The job runner: claims queued jobs and runs each attempt on an executor, in a worker thread.

One runner lives in each controller. :meth:`JobRunner.run_once` claims the next job by
fair share and hands it to a worker (:class:`~ketch.compute.attempt.Attempt`), so the
controller's loop never blocks on a job. :meth:`JobRunner.recover` takes over jobs
whose controller stopped renewing their lease and resumes them from the executor's
handle, without starting the user's code again: an attempt outlives the controller that
started it, so a restart costs no work. :meth:`JobRunner.close` leaves running attempts
alone for the same reason.

Layer: a service module. It never reads the server's environment; the few variables a
job inherits from the server arrive as ``base_environment`` (the contract's allow-list
passes only ``PATH``, ``LANG``, ``LC_ALL`` and ``TZ`` of them).
"""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from ketch.artifact_store import ArtifactStore
from ketch.compute import queue
from ketch.compute.attempt import Attempt, RunnerParts
from ketch.compute.environments import Environments
from ketch.compute.executors import Executor
from ketch.compute.queue import Capacity, Claim
from ketch.core.instances import INSTANCE_TYPES
from ketch.store.session import UnitOfWorkFactory

__all__ = ["DEFAULT_BASE_ENVIRONMENT", "JobRunner", "RunnerContext"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_ENVIRONMENT: Mapping[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
}
"""What a job inherits when the server passes nothing: no secret can be among it."""


class RunnerContext(Protocol):
    """The parts of the server's ``Context`` a runner uses."""

    @property
    def uow(self) -> UnitOfWorkFactory: ...

    @property
    def artifacts(self) -> ArtifactStore: ...


class JobRunner:
    """Claims jobs and runs their attempts; see the module docstring.

    ``lease`` is how long a claim lasts without a heartbeat (workers renew it every third
    of it); ``work_dir`` holds each job's roots (``<job id>/<attempt>/``) and logs
    (``<job id>/logs/attempt-<n>.log``). At most ``max_workers`` attempts are watched at
    once (by default as many as ``capacity`` lets run); beyond that nothing is claimed.
    ``prices`` (per instance-hour, by instance type) give each ended attempt its cost;
    ``environments`` builds and caches an interpreter for a bundle's requirements.txt.
    """

    def __init__(
        self,
        context: RunnerContext,
        executor: Executor,
        *,
        owner: str,
        capacity: Capacity,
        lease: timedelta,
        work_dir: Path,
        python: str = sys.executable,
        base_environment: Mapping[str, str] = DEFAULT_BASE_ENVIRONMENT,
        max_workers: int | None = None,
        poll_seconds: float = 1.0,
        stop_grace_seconds: float = 10.0,
        max_backoff: timedelta = timedelta(minutes=5),
        prices: Mapping[str, float] | None = None,
        environments: Environments | None = None,
    ) -> None:
        self.capacity = capacity
        workers = max_workers or _slots_of(capacity)
        self.parts = RunnerParts(
            uow=context.uow,
            artifacts=context.artifacts,
            executor=executor,
            owner=owner,
            lease=lease,
            work_dir=work_dir,
            python=python,
            base_environment=dict(base_environment),
            poll_seconds=min(poll_seconds, lease.total_seconds() / 3),
            stop_grace_seconds=stop_grace_seconds,
            max_backoff=max_backoff,
            closing=threading.Event(),
            prices=dict(prices or {}),
            environments=environments,
        )
        self._slots = threading.BoundedSemaphore(workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="ketch-job")
        self._lock = threading.Lock()
        self._running: dict[str, concurrent.futures.Future[None]] = {}
        self._recovered_at: float | None = None
        self.wakeup = threading.Event()
        """Set to make :meth:`serve` look at the queue now."""

    def run_once(self) -> bool:
        """Claim the next job and start its attempt in a worker; ``False`` if none was
        claimed (nothing waiting, no capacity, no free worker, or closing)."""
        if self.parts.closing.is_set() or not self._slots.acquire(blocking=False):
            return False
        try:
            with self.parts.uow(write=True) as uow:
                claim = queue.claim_next(
                    uow, owner=self.parts.owner, lease=self.parts.lease, capacity=self.capacity
                )
        except BaseException:
            self._slots.release()
            raise
        if claim is None:
            self._slots.release()
            return False
        logger.info("job %s: claimed attempt %d", claim.job_id, claim.attempt)
        self._submit(claim, Attempt(self.parts, claim).run)
        return True

    def recover(self) -> int:
        """Take over every job whose lease expired and resume it in a worker; returns how
        many were taken over. Jobs beyond the free workers wait for the next call."""
        self._recovered_at = time.monotonic()
        if self.parts.closing.is_set():
            return 0
        with self.parts.uow() as uow:
            seen = [(row.id, row.fence) for row in queue.expired(uow)]
        taken = 0
        for job_id, fence in seen:
            with self._lock:
                if job_id in self._running:
                    continue  # our own worker, late with a heartbeat: it finds out itself
            if not self._slots.acquire(blocking=False):
                break
            claim = self._take_over(job_id, fence)
            if claim is None:
                self._slots.release()
                continue
            taken += 1
            logger.info("job %s: taken over (attempt %d)", job_id, claim.attempt)
            self._submit(claim, Attempt(self.parts, claim).resume)
        return taken

    def tick(self) -> bool:
        """One pass of a controller loop: :meth:`recover` once a lease period has passed
        since the last time, then claim what can run. ``True`` if anything was claimed."""
        lease = self.parts.lease.total_seconds()
        if self._recovered_at is None or time.monotonic() - self._recovered_at >= lease:
            self.recover()
        claimed = False
        while self.run_once():
            claimed = True
        return claimed

    def serve(self, stop: threading.Event, *, idle_seconds: float = 1.0) -> None:
        """:meth:`tick` until ``stop`` is set, then :meth:`close`.

        Between ticks it sleeps until :attr:`wakeup` is set (a job was submitted, an
        attempt ended and freed a slot) or ``idle_seconds`` pass: a submitted job starts
        without waiting for a polling interval. Set :attr:`wakeup` after ``stop``.
        """
        try:
            while not stop.is_set():
                self.wakeup.clear()
                self.tick()
                self.wakeup.wait(idle_seconds)
        finally:
            self.close()

    def close(self, timeout: float = 30.0) -> None:
        """Stop claiming and wait (at most ``timeout`` seconds) for the workers.

        Watchers return at their next poll and leave their attempts running: the
        attempts outlive this runner, and the next to hold their jobs resumes them.
        """
        self.parts.closing.set()
        with self._lock:
            futures = list(self._running.values())
        _, late = concurrent.futures.wait(futures, timeout=timeout)
        if late:
            logger.warning(
                "runner %s: %d worker(s) still busy at close", self.parts.owner, len(late)
            )
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> int:
        """How many attempts this runner's workers hold now."""
        with self._lock:
            return len(self._running)

    def _take_over(self, job_id: str, fence: int) -> Claim | None:
        with self.parts.uow(write=True) as uow:
            return queue.take_over(
                uow, job_id, seen_fence=fence, owner=self.parts.owner, lease=self.parts.lease
            )

    def _submit(self, claim: Claim, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._running.pop(claim.job_id, None)
                self._slots.release()
                self.wakeup.set()  # a slot is free: look at the queue now

        with self._lock:
            self._running[claim.job_id] = self._pool.submit(run)


def _slots_of(capacity: Capacity) -> int:
    """How many attempts ``capacity`` could let run at once, over every instance type."""
    return max(1, sum(capacity.for_type(name) for name in INSTANCE_TYPES))
