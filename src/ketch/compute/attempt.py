"""One attempt of a job, from its claim to a final status (the worker side of the runner).

An attempt walks SageMaker's states: ``Downloading`` (job root, source bundle, input
channels), ``Training`` / ``Processing`` (the executor runs the user's code), ``Uploading``
(``model.tar.gz``, ``output.tar.gz`` or processing outputs) and ``Completed``. Every
state change is a fenced write made *before* the work it announces: a controller whose
lease was taken over finds its write refused (:class:`LeaseLost`) and stops without
touching anything, so two controllers never upload or finish the same attempt.

Failures are sorted by whose fault they are. The user's (a non-zero exit, the runtime
limit, ``output/failure``, an unsafe bundle, a missing input, a URI in another account)
fail the job at once. The platform's (a storage or executor error, a lost attempt, a bug
here) retry with exponential back-off while attempts remain.

While the code runs, the watcher also records the attempt's metrics (``metrics``) and,
once it ended, reads the rest of them before the attempt's end is written. An ended
attempt records its billable time (from the first ``Training``/``Processing`` after its
``Starting``, times the instance count) and, when the price sheet lists its instance
type, its cost. Failure reasons are masked like logs: no environment value shows in them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from ketch.artifact_store import ArtifactStore
from ketch.compute import _transfer, queue
from ketch.compute.contract import JobContract, JobPaths, argv, collect, environment, lay_out
from ketch.compute.environments import Environments
from ketch.compute.executors import AttemptState, AttemptStatus, Executor, Handle, Launch
from ketch.compute.logs import Masker, log_path
from ketch.compute.metrics import MetricRecorder, MetricTailer
from ketch.compute.service import check_own_account
from ketch.compute.tables import JobRow, JobTransitionRow
from ketch.core.archives import UnsafeArchive, extract_archive
from ketch.core.errors import BackendUnavailable, Forbidden, InvalidInput, NotFound
from ketch.core.instances import instance_type
from ketch.schemas.jobs import (
    FailureKind,
    JobSpec,
    JobStatus,
    ProcessingJobCreate,
    TrainingJobCreate,
)
from ketch.store.session import UnitOfWorkFactory

__all__ = ["Attempt", "LeaseLost", "RunnerParts"]

logger = logging.getLogger(__name__)

MAX_REASON = 1000
USER_ERRORS = (InvalidInput, NotFound, Forbidden)
"""Raised for what the job asked for (its bundle, its inputs, its outputs), not for ketch."""


class LeaseLost(Exception):
    """A fenced write changed nothing: another controller holds the job now."""


class PlatformError(Exception):
    """ketch could not run the attempt; retried while attempts remain."""


@dataclass(frozen=True)
class RunnerParts:
    """What every attempt of one runner shares."""

    uow: UnitOfWorkFactory
    artifacts: ArtifactStore
    executor: Executor
    owner: str
    lease: timedelta
    work_dir: Path
    python: str
    base_environment: Mapping[str, str]
    poll_seconds: float
    stop_grace_seconds: float
    max_backoff: timedelta
    closing: threading.Event
    """Set by ``close()``: watchers return and leave their attempts running."""
    prices: Mapping[str, float] = field(default_factory=dict)
    """Price per instance-hour by instance type; a type not listed has no cost."""
    environments: Environments | None = None
    """Interpreters for a bundle's requirements.txt; None: every job runs on ``python``."""


@dataclass(frozen=True)
class _Job:
    """The row's facts an attempt needs, read once (rows do not cross sessions)."""

    id: str
    account: str
    kind: str
    status: JobStatus
    handle: Handle | None
    spec: JobSpec

    @property
    def phase(self) -> JobStatus:
        return JobStatus.TRAINING if self.kind == "training" else JobStatus.PROCESSING


class Attempt:
    """Runs (:meth:`run`) or resumes (:meth:`resume`) one claimed attempt to its end."""

    def __init__(self, parts: RunnerParts, claim: queue.Claim) -> None:
        self.parts = parts
        self.claim = claim
        self._beat_at = time.monotonic()
        self._handle: Handle | None = None
        self._finished = False
        self._status: JobStatus | None = None
        self._metrics: MetricRecorder | None = None
        self._masker = Masker(())

    def run(self) -> None:
        """A fresh attempt: download, start, watch, upload."""
        self._guarded(self._fresh)

    def resume(self) -> None:
        """An attempt taken over from a controller that died: carry on from its handle."""
        self._guarded(self._recovered)

    # -- the two ways in ----------------------------------------------------------------

    def _fresh(self) -> None:
        job = self._load()
        self._advance(JobStatus.DOWNLOADING)
        check_own_account(job.spec, job.account)  # again: the row may not be what the API saw
        contract = _contract(job)
        root = self._root(job)
        root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths = lay_out(root, contract)
        self._download(job, paths)
        python = self._python(job, paths, contract)
        if self._stop_requested():
            self._advance(JobStatus.STOPPED, message="stopped before the code started")
            return
        handle = self._start(job, paths, contract, python)
        self._metrics = self._recorder(job, paths)
        self._finish(job, paths, self._watch(job, handle))

    def _recovered(self) -> None:
        job = self._load()
        self._status = job.status
        handle = job.handle if job.handle is not None else self._reattach(job)
        self._handle = handle
        contract = _contract(job)
        paths = JobPaths(
            self._root(job), contract.kind, contract.channels, contract.processing_outputs
        )
        self._metrics = self._recorder(job, paths)
        status = self.parts.executor.status(handle)
        logger.info("job %s: resuming attempt %d (%s)", job.id, self.claim.attempt, status.state)
        if not status.finished:
            if job.status is JobStatus.STOPPING:  # the stop may have died with its controller
                self.parts.executor.stop(handle, self.parts.stop_grace_seconds)
            status = self._watch(job, handle)
        self._finish(job, paths, status)

    def _reattach(self, job: _Job) -> Handle:
        """The handle of an attempt whose controller died before recording it.

        An executor starts an attempt id at most once and finds it again by that id: a
        found attempt is recorded now (a fenced write) and watched like any other; one
        never started is retried like any platform error, under a new attempt id.
        """
        executor = self.parts.executor
        handle = executor.find(self._attempt_id())
        if handle is None:
            raise PlatformError("the controller stopped before the attempt started")
        message = "re-attached to the attempt started before the take-over"
        if not self._try_advance(job.phase, message=message, handle=handle, executor=executor.name):
            raise LeaseLost
        return handle

    def _attempt_id(self) -> str:
        """The executor's name of this attempt: the same for every controller holding it."""
        return f"{self.claim.job_id}-{self.claim.attempt}"

    # -- phases -------------------------------------------------------------------------

    def _download(self, job: _Job, paths: JobPaths) -> None:
        store, tick = self.parts.artifacts, self._keep_lease
        source = _transfer.own_uri(job.spec.code.source_uri, job.account, what="source bundle")
        bundle = paths.root.parent / f"{self.claim.attempt}-sourcedir.tar.gz"
        bundle.unlink(missing_ok=True)
        try:
            _transfer.download_object(store, source, bundle, tick)
            extract_archive(bundle, paths.code, tick=tick)
        finally:
            bundle.unlink(missing_ok=True)
        for channel, text in job.spec.inputs.items():
            uri = _transfer.own_uri(
                text, job.account, what=f"input channel '{channel}'", allow_prefix=True
            )
            folder = (
                paths.channel(channel)
                if job.kind == "training"
                else paths.processing_input(channel)
            )
            count = _transfer.download_channel(store, uri, folder, tick, channel=channel)
            logger.info("job %s: channel %s: %d object(s) downloaded", job.id, channel, count)
        if job.kind == "training":
            self._restore_checkpoints(job, paths)

    def _python(self, job: _Job, paths: JobPaths, contract: JobContract) -> str:
        """The interpreter for the job: an environment for its requirements.txt if the
        bundle has one (built now if it is new, with pip's output in the job's log)."""
        environments = self.parts.environments
        if environments is None:
            return self.parts.python
        log = self._log_path(job)
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return environments.python_for(
            paths.code,
            env=environment(paths, contract, base=self.parts.base_environment),
            log=log,
            tick=self._keep_lease,
            scope=job.account,
            on_build=lambda: self._advance(
                JobStatus.DOWNLOADING, message="installing requirements.txt"
            ),
        )

    def _start(self, job: _Job, paths: JobPaths, contract: JobContract, python: str) -> Handle:
        log = self._log_path(job)
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        launch = Launch(
            attempt_id=self._attempt_id(),
            argv=argv(python, paths, contract),
            env=environment(paths, contract, base=self.parts.base_environment),
            cwd=paths.code,
            log_path=log,
            instance=contract.instance,
            max_runtime_seconds=job.spec.max_runtime_seconds,
        )
        executor = self.parts.executor
        handle = executor.start(launch)
        self._handle = handle
        if not self._try_advance(job.phase, handle=handle, executor=executor.name):
            executor.stop(handle, self.parts.stop_grace_seconds)  # nobody else knows of it
            raise LeaseLost
        logger.info("job %s: attempt %d started on %s", job.id, self.claim.attempt, executor.name)
        return handle

    def _watch(self, job: _Job, handle: Handle) -> AttemptStatus:
        """Wait for the attempt, renewing the lease and passing on a stop request.

        Returns early (raising :class:`LeaseLost`) when the runner closes: the attempt
        keeps running and the next controller to hold the job resumes it.
        """
        stopping = self._status is JobStatus.STOPPING
        while True:
            try:
                status = self.parts.executor.wait(handle, timeout=self.parts.poll_seconds)
            except BackendUnavailable as exc:
                # The executor's cluster is out of reach, not the attempt known to be gone:
                # keep the job (and its lease) and ask again, rather than start it anew.
                logger.warning("job %s: cannot reach the executor: %s", job.id, exc.message)
                self.parts.closing.wait(self.parts.poll_seconds)
                status = AttemptStatus(AttemptState.RUNNING)
            if status.finished:
                self._finished = True
                return status
            if self.parts.closing.is_set():
                raise LeaseLost("the runner is closing; the attempt is left running")
            self._keep_lease()
            self._record_metrics()
            if not stopping and self._stop_requested():
                self._advance(JobStatus.STOPPING, message="stop requested")
                self.parts.executor.stop(handle, self.parts.stop_grace_seconds)
                stopping = True

    def _finish(self, job: _Job, paths: JobPaths, status: AttemptStatus) -> None:
        state = status.state
        if state is AttemptState.RUNNING:
            raise PlatformError("the attempt is still running")
        self._record_metrics(final=True)
        if state is AttemptState.LOST:
            raise PlatformError(status.reason or "the executor lost the attempt")
        billable, cost = self._metering(job)
        self._save_checkpoints(job, paths)
        if state is AttemptState.STOPPED:
            self._advance(
                JobStatus.STOPPED, message="stopped", billable_seconds=billable, cost=cost
            )
        elif state is AttemptState.TIMED_OUT:
            limit = job.spec.max_runtime_seconds
            self._fail_user(
                f"ran past its limit of {limit} s", billable_seconds=billable, cost=cost
            )
        elif state is AttemptState.FAILED:
            code = status.exit_code if status.exit_code is not None else 1
            failure = collect(paths, exit_code=code or 1).failure_reason
            shown = f"exited with status {code}" if status.exit_code is not None else None
            reason = failure or shown or status.reason or "the job's code failed"
            self._fail_user(reason, billable_seconds=billable, cost=cost)
        else:
            if self._status is not JobStatus.UPLOADING:
                self._advance(JobStatus.UPLOADING, billable_seconds=billable, cost=cost)
            uris = self._upload(job, paths)
            self._advance(JobStatus.COMPLETED, message="completed", **uris)
            logger.info("job %s: completed", job.id)

    def _restore_checkpoints(self, job: _Job, paths: JobPaths) -> None:
        """What an earlier attempt (or job) left at ``checkpoint_uri`` into
        ``checkpoints/``, as SageMaker restores a spot job's checkpoints."""
        if job.spec.checkpoint_uri is None:
            return
        prefix = _transfer.own_uri(
            job.spec.checkpoint_uri, job.account, what="checkpoint URI", allow_prefix=True
        )
        count = _transfer.download_prefix(
            self.parts.artifacts, _transfer.as_prefix(prefix), paths.checkpoints, self._keep_lease
        )
        if count:
            logger.info("job %s: %d checkpoint file(s) restored", job.id, count)

    def _save_checkpoints(self, job: _Job, paths: JobPaths) -> None:
        """``checkpoints/`` to ``checkpoint_uri`` once the code has ended (whatever its
        outcome: a stopped or failed job's checkpoints are what a retry resumes from)."""
        if job.spec.checkpoint_uri is None or not paths.checkpoints.is_dir():
            return
        prefix = _transfer.own_uri(
            job.spec.checkpoint_uri, job.account, what="checkpoint URI", allow_prefix=True
        )
        _transfer.upload_folder(
            self.parts.artifacts, _transfer.as_prefix(prefix), paths.checkpoints, self._keep_lease
        )

    def _upload(self, job: _Job, paths: JobPaths) -> dict[str, object]:
        outputs = collect(paths, exit_code=0)
        store, tick = self.parts.artifacts, self._keep_lease
        if isinstance(job.spec, ProcessingJobCreate):
            for name, text in job.spec.outputs.items():
                prefix = _transfer.own_uri(
                    text, job.account, what=f"output '{name}'", allow_prefix=True
                )
                _transfer.upload_folder(store, prefix, outputs.processing_outputs[name], tick)
            return {}
        base = _transfer.own_uri(
            job.spec.output_uri, job.account, what="output URI", allow_prefix=True
        )
        folder = base.child(f"{job.spec.name}/output")
        assert outputs.model_archive is not None and outputs.output_archive is not None
        return {
            "model_artifact_uri": _transfer.upload_file(
                store, folder.child("model.tar.gz"), outputs.model_archive, tick
            ),
            "output_artifact_uri": _transfer.upload_file(
                store, folder.child("output.tar.gz"), outputs.output_archive, tick
            ),
        }

    # -- endings ------------------------------------------------------------------------

    def _guarded(self, body: Callable[[], None]) -> None:
        """Run ``body``, turning whatever escapes it into the job's end (or a retry)."""
        job_id = self.claim.job_id
        try:
            try:
                body()
            except UnsafeArchive as exc:
                self._fail_user(f"unsafe archive: {exc.message}")
            except USER_ERRORS as exc:
                self._fail_user(exc.message)
            except LeaseLost as exc:
                logger.warning("job %s: gave the job up: %s", job_id, exc or "lease lost")
            except Exception as exc:
                logger.exception("job %s: platform error in attempt %d", job_id, self.claim.attempt)
                self._platform_error(_reason(exc))
        except LeaseLost:
            logger.warning("job %s: lease lost while recording its end", job_id)
        except Exception:
            # The database itself may be away: the lease expires and a controller recovers.
            logger.exception("job %s: could not record the attempt's end", job_id)

    def _fail_user(self, reason: str, **values: object) -> None:
        reason = self._masker.text(reason)[:MAX_REASON]
        logger.info("job %s: failed (user): %s", self.claim.job_id, reason)
        self._advance(
            JobStatus.FAILED,
            message=reason,
            failure_reason=reason,
            failure_kind=FailureKind.USER.value,
            **values,
        )

    def _platform_error(self, reason: str) -> None:
        """Retry after ``2**attempt`` s (capped) while attempts remain, else fail the job."""
        reason = self._masker.text(reason)
        self._stop_abandoned()
        with self.parts.uow(write=True) as uow:
            row = uow.session.get(JobRow, self.claim.job_id)
            remaining = row is not None and self.claim.attempt < row.max_attempts
            if remaining:
                seconds = min(2.0**self.claim.attempt, self.parts.max_backoff.total_seconds())
                delay = timedelta(seconds=seconds)
                moved = queue.requeue(uow, self.claim, delay=delay, message=reason)
            else:
                moved = queue.advance(
                    uow,
                    self.claim,
                    JobStatus.FAILED,
                    message=reason,
                    failure_reason=reason,
                    failure_kind=FailureKind.PLATFORM.value,
                )
        if not moved:
            raise LeaseLost
        logger.warning(
            "job %s: platform error, %s: %s",
            self.claim.job_id,
            "retrying" if remaining else "failed",
            reason,
        )

    def _stop_abandoned(self) -> None:
        """Before the job is retried or failed, end this attempt if it may be running: by
        its handle, or found by its id when the failure came before the handle was known
        (a start that timed out may still have started it). Whatever this raises leaves
        the job claimed; its lease runs out and the next controller re-attaches."""
        if self._finished:
            return
        executor = self.parts.executor
        handle = self._handle or executor.find(self._attempt_id())
        if handle is not None:
            executor.stop(handle, self.parts.stop_grace_seconds)

    # -- the database -------------------------------------------------------------------

    def _load(self) -> _Job:
        with self.parts.uow() as uow:
            row = uow.session.get(JobRow, self.claim.job_id)
            if row is None:
                raise PlatformError(f"job {self.claim.job_id} is gone")
            model = TrainingJobCreate if row.kind == "training" else ProcessingJobCreate
            # Through JSON, as the spec was stored: the wire models refuse coercion.
            spec = model.model_validate_json(json.dumps(row.spec))
            self._masker = Masker(spec.environment.values())
            return _Job(row.id, row.account_id, row.kind, JobStatus(row.status), row.handle, spec)

    def _advance(self, status: JobStatus, *, message: str | None = None, **values: object) -> None:
        if not self._try_advance(status, message=message, **values):
            raise LeaseLost(f"could not move the job to {status}")

    def _try_advance(
        self, status: JobStatus, *, message: str | None = None, **values: object
    ) -> bool:
        with self.parts.uow(write=True) as uow:
            moved = queue.advance(uow, self.claim, status, message=message, **values)
        if moved:
            self._status = status
            logger.info("job %s: %s", self.claim.job_id, status)
        return moved

    def _keep_lease(self) -> None:
        """Renew the lease once a third of it has passed; :class:`LeaseLost` if taken."""
        if time.monotonic() - self._beat_at < self.parts.lease.total_seconds() / 3:
            return
        with self.parts.uow(write=True) as uow:
            held = queue.heartbeat(uow, self.claim, owner=self.parts.owner, lease=self.parts.lease)
        if not held:
            raise LeaseLost("the lease was taken over")
        self._beat_at = time.monotonic()

    def _stop_requested(self) -> bool:
        with self.parts.uow() as uow:
            row = uow.session.get(JobRow, self.claim.job_id)
            return row is not None and row.stop_requested

    def _billable(self, job: _Job) -> float:
        """Wall time since this attempt's code started, per instance.

        The start is the first ``Training``/``Processing`` after the latest ``Starting``
        (the claim of this attempt): a take-over records the current status again, which
        must not restart the clock.
        """
        with self.parts.uow() as uow:
            steps = uow.session.execute(
                select(JobTransitionRow.status, JobTransitionRow.at)
                .where(JobTransitionRow.job_id == job.id)
                .order_by(JobTransitionRow.seq)
            ).all()
            now = uow.clock.now()
        started = None
        for status, at in steps:
            if status == JobStatus.STARTING.value:
                started = None
            elif status == job.phase.value and started is None:
                started = at
        if started is None:
            return 0.0
        return max((now - started).total_seconds(), 0.0) * job.spec.instance_count

    def _metering(self, job: _Job) -> tuple[float, float | None]:
        """Billable seconds and cost (``None`` when the price sheet has no price)."""
        billable = self._billable(job)
        price = self.parts.prices.get(job.spec.instance_type)
        return billable, None if price is None else billable / 3600 * price

    # -- metrics ------------------------------------------------------------------------

    def _log_path(self, job: _Job) -> Path:
        return log_path(self.parts.work_dir, job.id, self.claim.attempt)

    def _recorder(self, job: _Job, paths: JobPaths) -> MetricRecorder:
        definitions = [(d.name, d.regex) for d in job.spec.metric_definitions]
        tailer = MetricTailer(definitions, self._log_path(job), paths.metrics_file)
        return MetricRecorder(
            self.parts.uow, self.claim, tailer, owner=self.parts.owner, lease=self.parts.lease
        )

    def _record_metrics(self, *, final: bool = False) -> None:
        """Record new metric points; a failure to read or store them is logged, never the
        attempt's end (the next call reads them again). :class:`LeaseLost` if taken over."""
        if self._metrics is None:
            return
        try:
            held = self._metrics.collect(final=final)
        except Exception:
            logger.warning("job %s: could not record metrics", self.claim.job_id, exc_info=True)
            return
        if not held:
            raise LeaseLost("the lease was taken over")

    def _root(self, job: _Job) -> Path:
        return self.parts.work_dir / job.id / str(self.claim.attempt)


def _contract(job: _Job) -> JobContract:
    spec = job.spec
    outputs = tuple(spec.outputs) if isinstance(spec, ProcessingJobCreate) else ()
    return JobContract(
        job_name=spec.name,
        kind="training" if job.kind == "training" else "processing",
        entry_point=spec.code.entry_point,
        instance=instance_type(spec.instance_type),
        instance_count=spec.instance_count,
        hyperparameters=spec.hyperparameters,
        channels=tuple(spec.inputs),
        processing_outputs=outputs,
        user_environment=spec.environment,
    )


def _reason(exc: Exception) -> str:
    text = str(exc) or "no details"
    return f"platform error ({type(exc).__name__}): {text}"[:MAX_REASON]
