"""The job queue in the database: fair claims, leases, fenced writes, status history.

*Fair share.* A free slot goes to the account with the fewest running jobs among those
with work waiting (ties: the oldest waiting job), then to that account's oldest job: a
thousand queued jobs of one account never starve another account's single job, which
takes the first slot that frees. Per-account quotas and per-instance-type capacity
bound what may run at once.

*Leases and fences.* Claiming a job makes the claimer its lease holder for a while and
bumps the job's ``fence``. The holder renews the lease (``heartbeat``) and names its
fence on every write; a write with a stale fence changes nothing and says so. A job
whose lease expired (its controller died) is taken over by another controller, which
bumps the fence again: the old holder, if it comes back, can no longer write.

A claim counts what runs, then takes a job if a slot is free: two claims must not count
at the same time, or both see the last free slot and fill it twice. On SQLite the write
transaction is exclusive already (``BEGIN IMMEDIATE``); on PostgreSQL a claim first takes
a transaction-scoped advisory lock (:data:`CLAIM_LOCK`), so claims queue for a moment
while every other query goes on, and each claim's counts (read committed) include the
claims committed before it. The chosen row is still locked with ``FOR UPDATE SKIP
LOCKED`` and moved by a compare-and-set on its status, so no job is claimed twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update

from ketch.compute.tables import JobRow, JobTransitionRow
from ketch.schemas.jobs import JobStatus
from ketch.store.session import UnitOfWork

ACTIVE = (
    JobStatus.STARTING,
    JobStatus.DOWNLOADING,
    JobStatus.TRAINING,
    JobStatus.PROCESSING,
    JobStatus.UPLOADING,
    JobStatus.STOPPING,
)
"""States in which an attempt holds a slot and a lease."""
FINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)
CLAIM_LOCK = int.from_bytes(b"ketchjob", "big")
"""The PostgreSQL advisory lock key (a bigint) that serialises claims, held to commit."""


@dataclass(frozen=True, slots=True)
class Capacity:
    """How much may run at once."""

    per_account: int = 4
    per_instance_type: Mapping[str, int] = field(default_factory=dict)
    default_per_instance_type: int = 2
    account_quotas: Mapping[str, int] = field(default_factory=dict)
    """Overrides of ``per_account`` for single accounts."""

    def for_type(self, instance_type: str) -> int:
        return self.per_instance_type.get(instance_type, self.default_per_instance_type)

    def for_account(self, account: str) -> int:
        return self.account_quotas.get(account, self.per_account)


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this controller now holds: write with ``fence``."""

    job_id: str
    account: str
    attempt: int
    fence: int


def record_transition(
    uow: UnitOfWork, job_id: str, status: JobStatus, at: datetime, message: str | None = None
) -> None:
    last = uow.session.scalar(
        select(func.max(JobTransitionRow.seq)).where(JobTransitionRow.job_id == job_id)
    )
    uow.session.add(
        JobTransitionRow(job_id=job_id, seq=(last or 0) + 1, status=status, at=at, message=message)
    )


def claim_next(
    uow: UnitOfWork, *, owner: str, lease: timedelta, capacity: Capacity
) -> Claim | None:
    """The next job by fair share, moved to ``Starting`` and leased to ``owner``.

    Claims are serialised (see the module docstring), so concurrent controllers never
    run more than ``capacity`` allows. Call it in a write unit of work.
    """
    now = uow.clock.now()
    session = uow.session
    postgres = session.bind is not None and session.bind.dialect.name == "postgresql"
    if postgres:  # before anything is counted; see the module docstring
        session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
    active = [s.value for s in ACTIVE]
    running = dict(
        session.execute(
            select(JobRow.account_id, func.count())
            .where(JobRow.status.in_(active))
            .group_by(JobRow.account_id)
        ).all()
    )
    busy_types = dict(
        session.execute(
            select(JobRow.instance_type, func.count())
            .where(JobRow.status.in_(active))
            .group_by(JobRow.instance_type)
        ).all()
    )
    waiting = (JobRow.status == JobStatus.PENDING.value) & (JobRow.next_attempt_at <= now)
    waiting &= ~JobRow.stop_requested  # none should wait so (requeue and stops see to it)
    waiting_types = session.scalars(select(JobRow.instance_type).where(waiting).distinct()).all()
    open_types = [t for t in waiting_types if busy_types.get(t, 0) < capacity.for_type(t)]
    if not open_types:
        return None
    waiting &= JobRow.instance_type.in_(open_types)
    heads = session.execute(
        select(JobRow.account_id, func.min(JobRow.queued_at))
        .where(waiting)
        .group_by(JobRow.account_id)
    ).all()
    eligible = [
        (running.get(account, 0), oldest, account)
        for account, oldest in heads
        if running.get(account, 0) < capacity.for_account(account)
    ]
    if not eligible:
        return None
    account = min(eligible)[2]
    query = (
        select(JobRow)
        .where(waiting & (JobRow.account_id == account))
        .order_by(JobRow.queued_at, JobRow.id)
        .limit(1)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True)
    job = session.scalars(query).first()
    if job is None:
        return None
    claimed = session.execute(
        update(JobRow)
        .where((JobRow.id == job.id) & (JobRow.status == JobStatus.PENDING.value))
        .values(
            status=JobStatus.STARTING.value,
            attempt=JobRow.attempt + 1,
            fence=JobRow.fence + 1,
            lease_owner=owner,
            lease_expires_at=now + lease,
            started_at=func.coalesce(JobRow.started_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(job)
    record_transition(uow, job.id, JobStatus.STARTING, now, f"attempt {job.attempt} by {owner}")
    return Claim(job.id, job.account_id, job.attempt, job.fence)


def heartbeat(uow: UnitOfWork, claim: Claim, *, owner: str, lease: timedelta) -> bool:
    """Renew the lease; ``False`` if the claim is no longer this controller's."""
    renewed = uow.session.execute(
        update(JobRow)
        .where(_held(claim))
        .values(lease_owner=owner, lease_expires_at=uow.clock.now() + lease)
        .execution_options(synchronize_session=False)
    )
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


def advance(
    uow: UnitOfWork,
    claim: Claim,
    status: JobStatus,
    *,
    message: str | None = None,
    **values: object,
) -> bool:
    """Move a held job to ``status`` (and set ``values``); ``False`` if the fence is stale.

    A final status ends the lease and stamps ``ended_at``.
    """
    now = uow.clock.now()
    changes: dict[str, object] = {"status": status.value, **values}
    if status in FINAL:
        changes |= {"lease_owner": None, "lease_expires_at": None, "ended_at": now}
    moved = uow.session.execute(
        update(JobRow)
        .where(_held(claim))
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_transition(uow, claim.job_id, status, now, message)
    return True


def requeue(uow: UnitOfWork, claim: Claim, *, delay: timedelta, message: str) -> bool:
    """Give a held job back to the queue for another attempt after ``delay``; a job whose
    stop was asked meanwhile is Stopped instead (a queued job never waits with a stop)."""
    now = uow.clock.now()
    stopping = JobRow.stop_requested
    moved = uow.session.execute(
        update(JobRow)
        .where(_held(claim))
        .values(
            status=case((stopping, JobStatus.STOPPED.value), else_=JobStatus.PENDING.value),
            ended_at=case((stopping, now), else_=JobRow.ended_at),
            lease_owner=None,
            lease_expires_at=None,
            handle=None,
            next_attempt_at=now + delay,
        )
        .returning(JobRow.status)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if moved is None:
        return False
    if moved == JobStatus.STOPPED.value:
        record_transition(uow, claim.job_id, JobStatus.STOPPED, now, f"stopped ({message})")
    else:
        record_transition(uow, claim.job_id, JobStatus.PENDING, now, message)
    return True


def expired(uow: UnitOfWork) -> list[JobRow]:
    """Running jobs whose controller stopped renewing their lease."""
    now = uow.clock.now()
    return list(
        uow.session.scalars(
            select(JobRow)
            .where(JobRow.status.in_([s.value for s in ACTIVE]))
            .where(JobRow.lease_expires_at < now)
            .order_by(JobRow.lease_expires_at)
        )
    )


def take_over(
    uow: UnitOfWork, job_id: str, *, seen_fence: int, owner: str, lease: timedelta
) -> Claim | None:
    """Hold a job whose lease expired, if nobody took it since it was seen at ``seen_fence``."""
    now = uow.clock.now()
    taken = uow.session.execute(
        update(JobRow)
        .where((JobRow.id == job_id) & (JobRow.fence == seen_fence))
        .where(JobRow.lease_expires_at < now)
        .values(fence=JobRow.fence + 1, lease_owner=owner, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    job = uow.session.get(JobRow, job_id, populate_existing=True)
    assert job is not None
    record_transition(uow, job_id, JobStatus(job.status), now, f"taken over by {owner}")
    return Claim(job.id, job.account_id, job.attempt, job.fence)


def stop_waiting(uow: UnitOfWork, job_id: str) -> bool:
    """Stop a job that is still queued, as one compare-and-set with :func:`claim_next`:
    ``False`` if a controller claimed it first (or it ended). The fence moves, so a claim
    that raced this stop can write nothing afterwards."""
    now = uow.clock.now()
    stopped = uow.session.execute(
        update(JobRow)
        .where((JobRow.id == job_id) & (JobRow.status == JobStatus.PENDING.value))
        .values(
            status=JobStatus.STOPPED.value,
            stop_requested=True,
            ended_at=now,
            fence=JobRow.fence + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if stopped.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_transition(uow, job_id, JobStatus.STOPPED, now, "stopped before it started")
    return True


def request_stop(uow: UnitOfWork, job_id: str) -> bool:
    """Ask the holder of a running job to stop it; ``False`` if the job already ended. A
    job found queued (requeued since :func:`stop_waiting` looked) is stopped at once, in
    the same statement, so no queued job is ever left waiting with a stop."""
    now = uow.clock.now()
    queued = JobRow.status == JobStatus.PENDING.value
    asked = uow.session.execute(
        update(JobRow)
        .where((JobRow.id == job_id) & JobRow.status.notin_([s.value for s in FINAL]))
        .values(
            stop_requested=True,
            status=case((queued, JobStatus.STOPPED.value), else_=JobRow.status),
            ended_at=case((queued, now), else_=JobRow.ended_at),
            fence=case((queued, JobRow.fence + 1), else_=JobRow.fence),
        )
        .returning(JobRow.status)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if asked == JobStatus.STOPPED.value:
        record_transition(uow, job_id, JobStatus.STOPPED, now, "stopped before it started")
    return asked is not None


def _held(claim: Claim):  # type: ignore[no-untyped-def]
    """The job row, while ``claim`` holds it: same fence, not yet ended."""
    return (
        (JobRow.id == claim.job_id)
        & (JobRow.fence == claim.fence)
        & JobRow.status.notin_([s.value for s in FINAL])
    )
