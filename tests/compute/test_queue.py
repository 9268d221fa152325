"""The job queue: fair share, quotas, capacity, leases and fenced writes, on both databases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ketch import compute, org
from ketch.compute import queue
from ketch.compute.queue import Capacity, Claim
from ketch.compute.tables import JobRow, JobTransitionRow
from ketch.core.ids import new_id
from ketch.schemas.jobs import JobKind, JobStatus, TrainingJobCreate
from ketch.schemas.org import AccountCreate, Stage
from ketch.store.session import UnitOfWorkFactory
from support.audit import ManualClock

LEASE = timedelta(seconds=30)
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def jobs(uow: UnitOfWorkFactory, clock: ManualClock) -> UnitOfWorkFactory:
    """Accounts team-a, team-b and team-c, and a clock the test moves."""
    uow.clock = clock
    with uow(write=True) as w:
        for account in ("team-a", "team-b", "team-c"):
            org.create_account(w, AccountCreate(id=account, stage=Stage.DEV))
    return uow


def submit(
    uow: UnitOfWorkFactory, account: str, count: int = 1, instance_type: str = "cpu.small"
) -> list[str]:
    """``count`` jobs queued through the job service, one microsecond apart."""
    ids = []
    with uow(write=True) as w:
        for _ in range(count):
            spec = TrainingJobCreate.model_validate(
                {
                    "name": f"job-{new_id()[:12]}",
                    "code": {"source_uri": f"ketch://{account}/code.tar.gz", "entry_point": "t.py"},
                    "output_uri": f"ketch://{account}/out/",
                    "instance_type": instance_type,
                }
            )
            job = compute.submit_job(w, account, JobKind.TRAINING, spec, created_by="tester")
            ids.append(job.id)
            w.clock.advance(microseconds=1)  # type: ignore[attr-defined]
    return ids


def claim(uow: UnitOfWorkFactory, capacity: Capacity, owner: str = "ctl-1") -> Claim | None:
    with uow(write=True) as w:
        return queue.claim_next(w, owner=owner, lease=LEASE, capacity=capacity)


def finish(uow: UnitOfWorkFactory, held: Claim) -> None:
    with uow(write=True) as w:
        assert queue.advance(w, held, JobStatus.COMPLETED, message="done")


def test_a_lone_job_takes_the_first_slot_that_frees(jobs: UnitOfWorkFactory) -> None:
    capacity = Capacity(per_account=10, default_per_instance_type=2)
    submit(jobs, "team-a", 200)
    first, second = claim(jobs, capacity), claim(jobs, capacity)
    assert first is not None and second is not None
    assert {first.account, second.account} == {"team-a"}
    assert claim(jobs, capacity) is None  # both slots busy
    (lone,) = submit(jobs, "team-b")
    finish(jobs, first)
    third = claim(jobs, capacity)
    assert third is not None and third.job_id == lone
    # With team-b's job running and team-a's two queues, slots alternate by running count.
    finish(jobs, second)
    fourth = claim(jobs, capacity)
    assert fourth is not None and fourth.account == "team-a"


def test_accounts_share_slots_by_how_much_they_already_run(jobs: UnitOfWorkFactory) -> None:
    capacity = Capacity(per_account=10, default_per_instance_type=6)
    submit(jobs, "team-a", 50)
    submit(jobs, "team-b", 50)
    submit(jobs, "team-c", 1)
    claimed = [claim(jobs, capacity) for _ in range(6)]
    accounts = sorted(c.account for c in claimed if c is not None)
    assert accounts == ["team-a", "team-a", "team-a", "team-b", "team-b", "team-c"]


def test_quotas_and_instance_capacity_bound_what_runs(jobs: UnitOfWorkFactory) -> None:
    capacity = Capacity(
        per_account=2, per_instance_type={"gpu.small": 1}, default_per_instance_type=10
    )
    submit(jobs, "team-a", 5)
    submit(jobs, "team-b", 2, instance_type="gpu.small")
    claimed = [claim(jobs, capacity) for _ in range(6)]
    held = [c for c in claimed if c is not None]
    assert sorted(c.account for c in held) == ["team-a", "team-a", "team-b"]
    assert claim(jobs, capacity) is None


def test_a_stale_fence_cannot_write_after_a_take_over(
    jobs: UnitOfWorkFactory, clock: ManualClock
) -> None:
    submit(jobs, "team-a")
    held = claim(jobs, Capacity())
    assert held is not None
    with jobs(write=True) as w:
        assert queue.heartbeat(w, held, owner="ctl-1", lease=LEASE)
        assert queue.advance(w, held, JobStatus.TRAINING)
    clock.advance(seconds=31)  # ctl-1 died: its lease ran out
    with jobs(write=True) as w:
        (stale,) = queue.expired(w)
        taken = queue.take_over(w, stale.id, seen_fence=stale.fence, owner="ctl-2", lease=LEASE)
        assert taken is not None and taken.fence == held.fence + 1
        # A second controller that saw the same expired lease gets nothing.
        assert (
            queue.take_over(w, stale.id, seen_fence=stale.fence, owner="ctl-3", lease=LEASE) is None
        )
    with jobs(write=True) as w:
        assert not queue.heartbeat(w, held, owner="ctl-1", lease=LEASE)
        assert not queue.advance(w, held, JobStatus.FAILED, failure_reason="zombie write")
        assert queue.advance(w, taken, JobStatus.COMPLETED)
    with jobs() as r:
        job = r.session.get(JobRow, held.job_id)
        assert job is not None and job.status == "Completed" and job.failure_reason is None
        assert job.lease_owner is None and job.ended_at == clock.now()
        history = [
            t.status for t in r.session.query(JobTransitionRow).order_by(JobTransitionRow.seq)
        ]
        assert history == ["Pending", "Starting", "Training", "Training", "Completed"]


def test_a_requeued_job_waits_for_its_back_off(jobs: UnitOfWorkFactory, clock: ManualClock) -> None:
    submit(jobs, "team-a")
    held = claim(jobs, Capacity())
    assert held is not None
    with jobs(write=True) as w:
        assert queue.requeue(w, held, delay=timedelta(seconds=10), message="executor lost")
    assert claim(jobs, Capacity()) is None
    clock.advance(seconds=10)
    again = claim(jobs, Capacity())
    assert again is not None and again.attempt == 2 and again.fence == held.fence + 1


def test_stop_requested_jobs_are_not_claimed(jobs: UnitOfWorkFactory) -> None:
    (job_id,) = submit(jobs, "team-a")
    with jobs(write=True) as w:
        row = w.session.get(JobRow, job_id)
        assert row is not None
        row.stop_requested = True
    assert claim(jobs, Capacity()) is None


def test_a_stop_that_loses_the_race_to_a_claim_only_asks_the_holder(
    jobs: UnitOfWorkFactory,
) -> None:
    (job_id,) = submit(jobs, "team-a")
    held = claim(jobs, Capacity())
    assert held is not None
    with jobs(write=True) as w:
        row = w.session.get(JobRow, job_id)
        assert row is not None
        stopped = compute.stop_job(w, "team-a", JobKind.TRAINING, row.name)
    # The claim won: the job is not marked Stopped under its holder's feet.
    assert stopped.status is JobStatus.STARTING
    with jobs() as r:
        row = r.session.get(JobRow, job_id)
        assert row is not None and row.stop_requested
    with jobs(write=True) as w:
        assert queue.advance(w, held, JobStatus.STOPPED, message="stopped on request")
        # An ended job takes no more writes, even from the claim that ended it.
        assert not queue.advance(w, held, JobStatus.TRAINING)
        assert not queue.request_stop(w, job_id)


def test_a_stopped_queued_job_cannot_then_be_claimed(jobs: UnitOfWorkFactory) -> None:
    (job_id,) = submit(jobs, "team-a")
    with jobs(write=True) as w:
        assert queue.stop_waiting(w, job_id)
        assert not queue.stop_waiting(w, job_id)
    assert claim(jobs, Capacity()) is None
    with jobs() as r:
        row = r.session.get(JobRow, job_id)
        assert row is not None and row.status == "Stopped" and row.ended_at is not None


CLAIMERS = 6
ROUNDS = 5


def test_concurrent_claimers_never_exceed_capacity(jobs: UnitOfWorkFactory) -> None:
    """Controllers claiming at the same moment each count what runs: without one lock
    around count-then-claim, two of them both see a free slot and fill it twice."""
    capacity = Capacity(per_account=100, default_per_instance_type=3)
    for account in ("team-a", "team-b", "team-c"):
        submit(jobs, account, CLAIMERS * ROUNDS)
    for _ in range(ROUNDS):
        start = threading.Barrier(CLAIMERS)
        held: list[Claim] = []
        errors: list[BaseException] = []

        def claimer(
            n: int,
            start: threading.Barrier = start,
            held: list[Claim] = held,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                start.wait(timeout=10)
                while (got := claim(jobs, capacity, owner=f"ctl-{n}")) is not None:
                    held.append(got)
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=claimer, args=(n,)) for n in range(CLAIMERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        with jobs() as r:
            running = r.session.scalar(
                select(func.count())
                .select_from(JobRow)
                .where(JobRow.status.in_([s.value for s in queue.ACTIVE]))
            )
        assert (len(held), running) == (3, 3)
        for claimed in held:
            finish(jobs, claimed)


def test_a_job_stopped_while_held_is_stopped_not_requeued_after_a_platform_error(
    jobs: UnitOfWorkFactory,
) -> None:
    """A stop asked of a running job, then a platform error: the retry would wait for ever
    (a queued job with a stop is never claimed); the job ends Stopped instead."""
    (job_id,) = submit(jobs, "team-a")
    held = claim(jobs, Capacity())
    assert held is not None
    with jobs(write=True) as w:
        assert queue.request_stop(w, job_id)
    with jobs(write=True) as w:
        assert queue.requeue(w, held, delay=timedelta(0), message="storage unavailable")
    with jobs() as r:
        row = r.session.get(JobRow, job_id)
        assert row is not None and row.status == JobStatus.STOPPED.value
        assert row.ended_at is not None
