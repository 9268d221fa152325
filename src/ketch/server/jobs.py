"""The embedded job controller: a :class:`~ketch.compute.runner.JobRunner` on a thread of
``ketch server``, built from settings, woken by submissions."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from ketch.compute.executors.local import LocalExecutor
from ketch.compute.queue import Capacity
from ketch.compute.runner import JobRunner
from ketch.server.context import Context


def build_runner(context: Context) -> JobRunner:
    settings = context.settings.jobs
    work_dir = settings.work_dir or context.settings.home / "jobs"
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    capacity = Capacity(
        per_account=settings.per_account,
        per_instance_type=settings.per_instance_type,
        default_per_instance_type=settings.default_per_instance_type,
    )
    runner = JobRunner(
        context,
        LocalExecutor(work_dir / "attempts"),
        owner=f"{socket.gethostname()}:{os.getpid()}",
        capacity=capacity,
        lease=timedelta(seconds=settings.lease_seconds),
        work_dir=work_dir / "roots",
    )
    runner.wakeup = context.job_wakeup
    return runner


@contextmanager
def job_runner(context: Context) -> Iterator[JobRunner]:
    """Run the controller while the block runs; on exit stop claiming and let running
    attempts be (they outlive the server, and the next start recovers them)."""
    runner = build_runner(context)
    stop = threading.Event()
    thread = threading.Thread(target=runner.serve, args=(stop,), name="ketch-jobs", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        runner.wakeup.set()
        thread.join(timeout=35)
