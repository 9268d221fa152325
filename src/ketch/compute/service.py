"""The job service: submit, describe, list and stop processing and training jobs.

Submission checks what the schema cannot: the account takes new work, and every URI the
job reads or writes is in the job's own account (another account's data only through an
explicit share, which a later issue brings; until then never). The schema already holds
the job rules the contract applies (``ketch.core.job_rules``). The runner checks the URIs
again when the job starts. Environment values are never shown again: they may be secrets.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ketch import org
from ketch.compute import queue
from ketch.compute._transfer import own_uri
from ketch.compute.tables import JobRow, JobTransitionRow
from ketch.core.errors import Conflict, NotFound
from ketch.core.ids import new_id
from ketch.core.krn import krn
from ketch.schemas.jobs import (
    FailureKind,
    Job,
    JobKind,
    JobSpec,
    JobStatus,
    ProcessingJobCreate,
    StatusTransition,
    TrainingJobCreate,
)
from ketch.store.session import UnitOfWork

HIDDEN = "(hidden)"
KRN_TYPES = {JobKind.TRAINING: "training-job", JobKind.PROCESSING: "processing-job"}


def submit_job(
    uow: UnitOfWork, account: str, kind: JobKind, spec: JobSpec, *, created_by: str
) -> Job:
    """Queue a job; :class:`Conflict` if the account already has one of that name."""
    org.require_active_account(uow, account)
    check_own_account(spec, account)
    now = uow.clock.now()
    row = JobRow(
        id=new_id(),
        account_id=account,
        kind=kind.value,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        instance_type=spec.instance_type,
        created_by=created_by,
        created_at=now,
        status=JobStatus.PENDING.value,
        stop_requested=False,
        attempt=0,
        max_attempts=1 + spec.retry_strategy.maximum_retry_attempts,
        queued_at=now,
        next_attempt_at=now,
        fence=0,
    )
    uow.session.add(row)
    uow.flush_or_conflict(f"a {kind.value} job named '{spec.name}' already exists in {account}")
    queue.record_transition(uow, row.id, JobStatus.PENDING, now, f"submitted by {created_by}")
    return job_of(uow, row)


def check_own_account(spec: JobSpec, account: str) -> None:
    """:class:`Forbidden` unless every URI the job reads or writes is in ``account``."""
    for what, uri in job_uris(spec):
        own_uri(uri, account, what=what, allow_prefix=True)


def job_uris(spec: JobSpec) -> list[tuple[str, str]]:
    """Every artifact URI a job reads or writes, with what it is for."""
    uris = [("source bundle", spec.code.source_uri), ("output URI", spec.output_uri)]
    uris += [(f"input channel '{name}'", uri) for name, uri in spec.inputs.items()]
    if spec.checkpoint_uri:
        uris.append(("checkpoint URI", spec.checkpoint_uri))
    if isinstance(spec, ProcessingJobCreate):
        uris += [(f"output '{name}'", uri) for name, uri in spec.outputs.items()]
    return uris


def get_job(uow: UnitOfWork, account: str, kind: JobKind, name: str) -> Job:
    return job_of(uow, job_row(uow, account, kind, name))


def get_job_by_id(uow: UnitOfWork, job_id: str) -> Job:
    row = uow.session.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"job {job_id} does not exist")
    return job_of(uow, row)


def list_jobs(
    uow: UnitOfWork,
    account: str,
    kind: JobKind,
    *,
    status: JobStatus | None = None,
    name_prefix: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    tag: tuple[str, str] | None = None,
    limit: int = 100,
    after: str | None = None,
) -> tuple[list[Job], str | None]:
    """One page of jobs, by name; the name to continue after, or ``None`` at the end."""
    query = select(JobRow).where(JobRow.account_id == account, JobRow.kind == kind.value)
    if status is not None:
        query = query.where(JobRow.status == status.value)
    if name_prefix:
        query = query.where(JobRow.name.startswith(name_prefix, autoescape=True))
    if created_after is not None:
        query = query.where(JobRow.created_at >= created_after)
    if created_before is not None:
        query = query.where(JobRow.created_at < created_before)
    if after is not None:
        query = query.where(JobRow.name > after)
    query = query.order_by(JobRow.name)
    if tag is None:
        rows = list(uow.session.scalars(query.limit(limit + 1)))
    else:  # tags live in the spec document: filtered here, not in SQL
        key, value = tag
        rows = [r for r in uow.session.scalars(query) if r.spec.get("tags", {}).get(key) == value]
    page = rows[:limit]
    last = page[-1].name if len(rows) > limit else None
    histories: dict[str, list[JobTransitionRow]] = {row.id: [] for row in page}
    if page:  # one query for the whole page's histories, not one per job
        for transition in uow.session.scalars(
            select(JobTransitionRow)
            .where(JobTransitionRow.job_id.in_(list(histories)))
            .order_by(JobTransitionRow.job_id, JobTransitionRow.seq)
        ):
            histories[transition.job_id].append(transition)
    return [job_of(uow, r, histories[r.id]) for r in page], last


def stop_job(uow: UnitOfWork, account: str, kind: JobKind, name: str) -> Job:
    """A queued job stops at once; a running one is stopped by its runner."""
    row = job_row(uow, account, kind, name)
    stopped = queue.stop_waiting(uow, row.id) or queue.request_stop(uow, row.id)
    uow.session.refresh(row)
    if not stopped:
        raise Conflict(f"{kind.value} job '{name}' already ended ({row.status})")
    return job_of(uow, row)


def job_krn(account: str, kind: JobKind, name: str) -> str:
    return krn(account, KRN_TYPES[kind], name)


def job_of(
    uow: UnitOfWork, row: JobRow, transitions: Iterable[JobTransitionRow] | None = None
) -> Job:
    """The wire form of ``row``; its history is read unless ``transitions`` (in order)
    are given."""
    kind = JobKind(row.kind)
    spec_data: dict[str, Any] = dict(row.spec)
    spec_data["environment"] = {key: HIDDEN for key in spec_data.get("environment", {})}
    spec_model = TrainingJobCreate if kind is JobKind.TRAINING else ProcessingJobCreate
    if transitions is None:
        transitions = uow.session.scalars(
            select(JobTransitionRow)
            .where(JobTransitionRow.job_id == row.id)
            .order_by(JobTransitionRow.seq)
        )
    return Job(
        id=row.id,
        krn=job_krn(row.account_id, kind, row.name),
        account=row.account_id,
        name=row.name,
        kind=kind,
        status=JobStatus(row.status),
        secondary_status=row.secondary_status,
        failure_reason=row.failure_reason,
        failure_kind=FailureKind(row.failure_kind) if row.failure_kind else None,
        attempt=row.attempt,
        spec=spec_model.model_validate(spec_data),
        outputs=dict(spec_data.get("outputs", {})),
        transitions=[
            StatusTransition(status=JobStatus(t.status), at=t.at, message=t.message)
            for t in transitions
        ],
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        billable_seconds=row.billable_seconds,
        cost=row.cost,
        model_artifact_uri=row.model_artifact_uri,
        output_artifact_uri=row.output_artifact_uri,
    )


def job_row(uow: UnitOfWork, account: str, kind: JobKind, name: str) -> JobRow:
    """A job's row, for this service's own modules; :class:`NotFound` if there is none."""
    row = uow.session.scalars(
        select(JobRow).where(
            JobRow.account_id == account, JobRow.kind == kind.value, JobRow.name == name
        )
    ).first()
    if row is None:
        raise NotFound(f"{kind.value} job '{name}' does not exist in {account}")
    return row
