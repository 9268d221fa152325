"""record_event and list_events: gapless sequence, the chain, redaction, filters."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from ketch import audit
from ketch.audit.chain import GENESIS_HASH, record_hash
from ketch.audit.tables import AuditEventRow, AuditHeadRow
from ketch.core.errors import InvalidInput
from ketch.schemas.audit import AuditEventFilter, AuditOutcome
from ketch.server.context import Context
from support.audit import ManualClock, entry, record, verify, write_digest


def _rows(ctx: Context) -> list[AuditEventRow]:
    with ctx.uow() as uow:
        return list(uow.session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)))


def test_appends_are_numbered_without_gaps_and_chained(ctx: Context) -> None:
    assert record(ctx, 5) == [1, 2, 3, 4, 5]
    rows = _rows(ctx)
    assert [r.prev_hash for r in rows] == [GENESIS_HASH] + [r.hash for r in rows[:-1]]
    for row in rows:
        fields = {c.name: getattr(row, c.name) for c in AuditEventRow.__table__.columns}
        assert record_hash(fields) == row.hash
    with ctx.uow() as uow:
        head = uow.session.get(AuditHeadRow, 1)
        assert head is not None and (head.last_seq, head.last_hash) == (5, rows[-1].hash)


def test_every_field_is_stored(ctx: Context, clock: ManualClock) -> None:
    with ctx.uow(write=True) as uow:
        audit.record_event(
            uow,
            entry(
                1,
                outcome=audit.Outcome.DENIED,
                error_code="AccessDenied",
                policy_ids=("p-1", "guardrail-2"),
                details={"stage": "prod", "count": 3, "dry_run": False, "note": None},
            ),
        )
    (row,) = _rows(ctx)
    assert (row.time, row.principal, row.principal_id, row.account) == (
        clock.now(),
        "alice",
        "u-alice",
        "fraud-dev",
    )
    assert (row.action, row.resource, row.request_id) == (
        "Action1",
        "krn:ketch:fraud-dev:model-group/m1",
        "req-1",
    )
    assert (row.source_ip, row.user_agent, row.outcome, row.error_code) == (
        "127.0.0.1",
        "ketch-tests/1.0",
        "denied",
        "AccessDenied",
    )
    assert row.policy_ids == ["p-1", "guardrail-2"]
    assert row.details == {"stage": "prod", "count": 3, "dry_run": False, "note": None}


def test_a_rolled_back_change_takes_its_record_and_number_with_it(ctx: Context) -> None:
    record(ctx, 2)
    with pytest.raises(RuntimeError), ctx.uow(write=True) as uow:
        assert audit.record_event(uow, entry(99)) == 3
        raise RuntimeError("the change failed")
    assert record(ctx, 1, start=3) == [3]
    assert [r.action for r in _rows(ctx)] == ["Action0", "Action1", "Action3"]


def test_secrets_never_reach_the_trail_or_the_logs(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-s3cr3t"
    token = "ketch_abcdefgh_" + "x" * 32
    caplog.set_level(logging.DEBUG, logger="ketch")
    with ctx.uow(write=True) as uow:
        audit.record_event(
            uow,
            entry(
                1,
                user_agent=f"curl password={secret}",
                resource=f"Bearer {token}",
                details={"api_token": "plain", "client_secret": secret, "note": f"token={secret}"},
            ),
        )
    write_digest(ctx)
    (row,) = _rows(ctx)
    stored = repr((row.user_agent, row.resource, row.details))
    assert secret not in stored and token not in stored and "plain" not in stored
    assert row.details["api_token"] == "***"
    assert secret not in caplog.text and token not in caplog.text


def test_oversized_values_are_cut_not_refused(ctx: Context) -> None:
    with ctx.uow(write=True) as uow:
        audit.record_event(uow, entry(1, user_agent="x" * 5000, request_id="r\x00id"))
    (row,) = _rows(ctx)
    assert row.user_agent == "x" * 512
    assert row.request_id == "rid"
    write_digest(ctx)
    assert verify(ctx).ok


@pytest.mark.parametrize(
    "details",
    [{"ratio": 0.5}, {"nested": {"a": 1}}, {f"k{i}": i for i in range(33)}],
    ids=["float", "nested", "too-many"],
)
def test_details_are_few_plain_values(ctx: Context, details: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="audit detail"), ctx.uow(write=True) as uow:
        audit.record_event(uow, entry(1, details=details))


def test_time_never_goes_backwards_along_the_sequence(ctx: Context, clock: ManualClock) -> None:
    record(ctx, 1)
    clock.advance(seconds=5)
    record(ctx, 1, start=1)
    assert [r.time for r in _rows(ctx)] == [clock.now() - timedelta(seconds=5), clock.now()]


def test_concurrent_appends_stay_gapless_and_verify(ctx: Context) -> None:
    """Writers in several threads (separate connections, as separate servers would be)."""
    threads_count, per_thread = 6, 15
    barrier = threading.Barrier(threads_count)
    failures: list[BaseException] = []

    def writer(w: int) -> None:
        barrier.wait()
        try:
            for n in range(per_thread):
                with ctx.uow(write=True) as uow:
                    audit.record_event(uow, entry(w * 1000 + n))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    rows = _rows(ctx)
    assert [r.seq for r in rows] == list(range(1, threads_count * per_thread + 1))
    assert len({r.action for r in rows}) == threads_count * per_thread
    write_digest(ctx)
    report = verify(ctx)
    assert report.ok, report.findings
    assert report.records_checked == threads_count * per_thread


def _list(ctx: Context, limit: int = 100, after: str | None = None, **filters: object):  # type: ignore[no-untyped-def]
    with ctx.uow() as uow:
        return audit.list_events(uow, AuditEventFilter(**filters), limit=limit, after=after)


def test_list_filters(ctx: Context, clock: ManualClock) -> None:
    record(ctx, 3, account="fraud-dev", principal="alice")
    clock.advance(minutes=10)
    record(ctx, 2, start=3, account="fraud-prod", principal="bob")
    record(ctx, 1, start=5, account=None, outcome=audit.Outcome.DENIED, error_code="AccessDenied")

    def seqs(**filters: object) -> list[int]:
        return [e.seq for e in _list(ctx, **filters)[0]]

    assert seqs() == [1, 2, 3, 4, 5, 6]
    assert seqs(account="fraud-prod") == [4, 5]
    assert seqs(principal="alice") == [1, 2, 3, 6]
    assert seqs(action="Action3") == [4]
    assert seqs(outcome=AuditOutcome.DENIED) == [6]
    assert seqs(start_time=clock.now()) == [4, 5, 6]
    assert seqs(end_time=clock.now()) == [1, 2, 3]
    assert seqs(newest_first=True) == [6, 5, 4, 3, 2, 1]
    assert seqs(principal="alice", outcome=AuditOutcome.SUCCESS, account="fraud-dev") == [1, 2, 3]


def test_list_pages_in_both_orders(ctx: Context) -> None:
    record(ctx, 7)
    for newest_first, expected in ((False, [1, 2, 3, 4, 5, 6, 7]), (True, [7, 6, 5, 4, 3, 2, 1])):
        seen: list[int] = []
        after = None
        while True:
            items, after = _list(ctx, limit=3, after=after, newest_first=newest_first)
            seen += [e.seq for e in items]
            if after is None:
                break
        assert seen == expected
    with pytest.raises(InvalidInput):
        _list(ctx, after="not-a-number")
