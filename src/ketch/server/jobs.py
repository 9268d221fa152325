"""The embedded job controller: a :class:`~ketch.compute.runner.JobRunner` on a thread of
``ketch server``, built from settings, woken by submissions."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from ketch.compute import roots_dir
from ketch.compute.environments import Environments
from ketch.compute.executors import Executor
from ketch.compute.executors.local import LocalExecutor
from ketch.compute.executors.ray import RayExecutor
from ketch.compute.queue import Capacity
from ketch.compute.runner import JobRunner
from ketch.core.settings import JobSettings
from ketch.server.context import Context

logger = logging.getLogger(__name__)


def build_executor(settings: JobSettings, work_dir: Path) -> Executor:
    """The executor ``jobs.executor`` names; its state goes under ``work_dir``."""
    if settings.executor == "ray":  # Ray itself is imported by the driver process only
        return RayExecutor.from_settings(settings.ray, work_dir / "ray")
    return LocalExecutor(work_dir / "attempts")


def build_runner(context: Context) -> JobRunner:
    settings = context.settings.jobs
    work_dir = context.settings.resolved_jobs_dir()
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    capacity = Capacity(
        per_account=settings.per_account,
        per_instance_type=settings.per_instance_type,
        default_per_instance_type=settings.default_per_instance_type,
    )
    runner = JobRunner(
        context,
        build_executor(settings, work_dir),
        owner=f"{socket.gethostname()}:{os.getpid()}",
        capacity=capacity,
        lease=timedelta(seconds=settings.lease_seconds),
        work_dir=roots_dir(work_dir),
        prices=settings.prices,
        environments=Environments(
            settings.environments_dir or work_dir / "environments",
            python=sys.executable,
            pip_args=settings.pip_args,
            timeout_seconds=settings.pip_timeout_seconds,
            ttl_days=settings.environment_ttl_days,
        ),
    )
    runner.wakeup = context.job_wakeup
    return runner


@contextmanager
def job_runner(context: Context) -> Iterator[JobRunner]:
    """Run the controller while the block runs; on exit stop claiming and let running
    attempts be (they outlive the server, and the next start recovers them)."""
    runner = build_runner(context)
    environments = runner.parts.environments
    if environments is not None:  # unused environments go, off the start-up path
        threading.Thread(
            target=_evict, args=(environments,), name="ketch-envs", daemon=True
        ).start()
    stop = threading.Event()
    thread = threading.Thread(target=runner.serve, args=(stop,), name="ketch-jobs", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        runner.wakeup.set()
        thread.join(timeout=35)


def _evict(environments: Environments) -> None:
    try:
        removed = environments.evict()
    except OSError:
        logger.warning("could not remove unused job environments", exc_info=True)
        return
    if removed:
        logger.info("removed %d unused job environment(s)", removed)
