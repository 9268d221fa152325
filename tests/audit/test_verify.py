"""Tampering with the trail straight in the database (or the digest folder) is found and named.

The trail under test: records 1-10, digest 1, records 11-20, digest 2, records 21-25
(not yet covered by a digest), then one minute passes.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from ketch import audit
from ketch.audit.chain import record_hash
from ketch.audit.tables import AuditEventRow
from ketch.core.errors import InternalError
from ketch.schemas.audit import AuditVerifyReport
from ketch.server.context import Context, build_context
from support.audit import ManualClock, entry, messages, record, tamper, verify, write_digest
from support.settings import make_settings


@pytest.fixture
def digests(ctx: Context, clock: ManualClock) -> list[audit.Digest]:
    record(ctx, 10)
    first = write_digest(ctx)
    clock.advance(minutes=5)
    record(ctx, 10, start=10)
    second = write_digest(ctx)
    record(ctx, 5, start=20)
    clock.advance(minutes=1)
    return [first, second]


def _fields(ctx: Context, seq: int) -> dict[str, object]:
    with ctx.uow() as uow:
        row = uow.session.execute(
            select(AuditEventRow.__table__).where(AuditEventRow.seq == seq)
        ).one()
    return row._asdict()


def _rewrite(ctx: Context, seq: int, **changes: object) -> str:
    """Change a record *and* recompute its hash, as an intruder who knows the scheme can."""
    fields = {**_fields(ctx, seq), **changes}
    new_hash = record_hash(fields)
    assignments = ", ".join(f"{name} = :{name}" for name in changes)
    tamper(
        ctx,
        f"UPDATE audit_events SET {assignments}, hash = :new_hash WHERE seq = :seq",
        new_hash=new_hash,
        seq=seq,
        **changes,
    )
    return new_hash


def test_an_untouched_trail_verifies(ctx: Context, digests: list[audit.Digest]) -> None:
    report = verify(ctx)
    assert report.ok, messages(report)
    assert (report.records_checked, report.newest_seq, report.digests_checked) == (25, 25, 2)
    assert report.newest_digest_at == digests[1].time


Described = tuple[str, int | None, int | None, int | None, str]


def _described(report: AuditVerifyReport) -> list[Described]:
    """Each finding as (kind, first_seq, last_seq, digest_id, message)."""
    return [(f.kind, f.first_seq, f.last_seq, f.digest_id, f.message) for f in report.findings]


CHANGED = "record_changed"
MISSING = "record_missing"
NEWEST_DELETED = "newest_records_deleted"
SWAPPED = "records_swapped"


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        pytest.param(
            ["UPDATE audit_events SET principal = 'mallory' WHERE seq = 7"],
            [(CHANGED, 7, 7, None, "record 7: contents changed (hash mismatch)")],
            id="one-changed-field",
        ),
        pytest.param(
            [
                "UPDATE audit_events SET principal = 'mallory' WHERE seq IN (12, 13, 14)",
                "UPDATE audit_events SET account = 'fraud-prod' WHERE seq = 3",
            ],
            [
                (CHANGED, 3, 3, None, "record 3: contents changed (hash mismatch)"),
                (CHANGED, 12, 14, None, "records 12-14: contents changed (hash mismatch)"),
            ],
            id="changed-neighbours-as-a-range",
        ),
        pytest.param(
            ["DELETE FROM audit_events WHERE seq = 7"],
            [(MISSING, 7, 7, None, "record 7 missing (sequence gap)")],
            id="deleted-middle-record",
        ),
        pytest.param(
            [
                "DELETE FROM audit_events WHERE seq = 7",
                "DELETE FROM audit_events WHERE seq IN (14, 15)",
            ],
            [
                (MISSING, 7, 7, None, "record 7 missing (sequence gap)"),
                (MISSING, 14, 15, None, "records 14-15 missing (sequence gap)"),
            ],
            id="deleted-middle-records",
        ),
        pytest.param(
            ["DELETE FROM audit_events WHERE seq > 17"],
            [
                (
                    NEWEST_DELETED,
                    18,
                    25,
                    None,
                    "records 18-25 missing: newest records deleted (the audit head says 25 "
                    "is the newest record, the newest present is 17)",
                ),
                (
                    NEWEST_DELETED,
                    18,
                    20,
                    2,
                    "digest 2 covers records up to 20 but the newest record is 17: newest "
                    "records deleted",
                ),
            ],
            id="deleted-newest-records",
        ),
        pytest.param(
            [
                "UPDATE audit_events SET seq = -5 WHERE seq = 5",
                "UPDATE audit_events SET seq = 5 WHERE seq = 6",
                "UPDATE audit_events SET seq = 6 WHERE seq = -5",
            ],
            [(SWAPPED, 5, 6, None, "records 5 and 6 swapped (out of order)")],
            id="two-swapped-records",
        ),
        pytest.param(
            [
                "UPDATE audit_events SET seq = -1 WHERE seq = 3",
                "UPDATE audit_events SET seq = 3 WHERE seq = 23",
                "UPDATE audit_events SET seq = 23 WHERE seq = -1",
            ],
            [(SWAPPED, 3, 23, None, "records 3 and 23 swapped (out of order)")],
            id="far-apart-swapped-records",
        ),
        pytest.param(
            ["UPDATE audit_digests SET last_seq = 9 WHERE id = 1"],
            [("digest_changed", None, None, 1, "digest 1: signature invalid (changed)")],
            id="changed-digest-row",
        ),
    ],
)
def test_tampering_is_found_and_named(
    ctx: Context,
    digests: list[audit.Digest],
    statements: list[str],
    expected: list[Described],
) -> None:
    tamper(ctx, *statements)
    report = verify(ctx)
    assert not report.ok
    assert _described(report) == expected


def test_deleted_newest_records_are_found_even_with_the_head_row_reset(
    ctx: Context, digests: list[audit.Digest]
) -> None:
    seventeen = _fields(ctx, 17)["hash"]
    tamper(
        ctx,
        "DELETE FROM audit_events WHERE seq > 17",
        "UPDATE audit_head SET last_seq = 17, last_hash = :h",
        h=seventeen,
    )
    assert messages(verify(ctx)) == [
        "digest 2 covers records up to 20 but the newest record is 17: newest records deleted"
    ]


def test_a_rewritten_record_with_a_recomputed_hash_breaks_the_chain(
    ctx: Context, digests: list[audit.Digest]
) -> None:
    _rewrite(ctx, 7, outcome="success", error_code=None, principal="mallory")
    assert messages(verify(ctx)) == [
        "record 8: chain broken (previous hash does not match record 7): record 7 was "
        "rewritten with a recomputed hash, or records were reordered"
    ]


def test_a_recomputed_chain_is_caught_by_the_signed_digests(
    ctx: Context, digests: list[audit.Digest]
) -> None:
    """An intruder rewrites record 7 and every hash after it, and the head row too."""
    previous = _rewrite(ctx, 7, principal="mallory")
    for seq in range(8, 26):
        previous = _rewrite(ctx, seq, prev_hash=previous)
    tamper(ctx, "UPDATE audit_head SET last_hash = :h", h=previous)
    report = verify(ctx)
    assert len(report.findings) == 1
    (message,) = messages(report)
    assert message.startswith(f"digest 1 signed record 10 with hash {digests[0].head_hash[:12]}")
    assert message.endswith("records up to 10 were rewritten (and 1 later digests disagree too)")


def test_an_inserted_record_is_named(ctx: Context, digests: list[audit.Digest]) -> None:
    """A forged record slipped in at 7 with a valid hash, the rest renumbered up by one."""
    forged = {**_fields(ctx, 7), "action": "Forged"}
    tamper(
        ctx,
        "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 7",
        "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1000",
    )
    forged["hash"] = record_hash(forged)
    with ctx.engine.begin() as conn:
        conn.execute(AuditEventRow.__table__.insert(), [forged])
    found = messages(verify(ctx))
    assert "record 7: inserted (the record first written as 7 now sits at 8)" in found
    assert "records 8-26: out of order (holds the records written as 7-25; chain broken)" in found


def test_a_record_added_behind_ketchs_back_is_named(
    ctx: Context, digests: list[audit.Digest]
) -> None:
    forged = {**_fields(ctx, 25), "seq": 26, "prev_hash": _fields(ctx, 25)["hash"]}
    forged["hash"] = record_hash(forged)
    with ctx.engine.begin() as conn:
        conn.execute(AuditEventRow.__table__.insert(), [forged])
    assert messages(verify(ctx)) == [
        "record 26: inserted behind ketch's back (the audit head says 25 is the newest "
        "record ketch wrote)"
    ]


def test_a_deleted_digest_row_is_named(ctx: Context, digests: list[audit.Digest]) -> None:
    tamper(ctx, "DELETE FROM audit_digests WHERE id = 1")
    assert messages(verify(ctx)) == [
        f"digest 1 missing from the database (gap in digest numbers; file "
        f"{digests[0].file_name} remains)"
    ]


def test_a_deleted_newest_digest_row_is_named(
    ctx: Context, digests: list[audit.Digest], clock: ManualClock
) -> None:
    tamper(ctx, "DELETE FROM audit_digests WHERE id = 2")
    # Within the first minute the file may belong to a commit still under way.
    assert verify(ctx, now=digests[1].time).ok
    clock.advance(minutes=2)
    assert messages(verify(ctx)) == [
        f"digest 2 missing from the database (its file {digests[1].file_name} remains): "
        "newest digests deleted"
    ]


def test_a_deleted_or_changed_digest_file_is_named(
    ctx: Context, digests: list[audit.Digest]
) -> None:
    folder = ctx.audit.digest_dir
    (folder / digests[0].file_name).unlink()
    changed = folder / digests[1].file_name
    changed.write_text(changed.read_text().replace('"last_seq": 20', '"last_seq": 19'))
    assert messages(verify(ctx)) == [
        f"digest file {digests[1].file_name}: signature invalid (file changed)",
        f"digest 1: its file {digests[0].file_name} is missing from {folder}",
    ]


def test_a_stale_newest_digest_is_named(
    ctx: Context, digests: list[audit.Digest], clock: ManualClock
) -> None:
    clock.advance(hours=2)
    (message,) = messages(verify(ctx, max_age=timedelta(minutes=10)))
    assert message.startswith("newest digest is 2h 1m old (limit 10m): stale (digest 2")


def test_a_trail_without_any_digest_is_stale(ctx: Context) -> None:
    record(ctx, 3)
    assert messages(verify(ctx)) == [
        "no valid digest has been written: the records are not signed (stale)"
    ]


def test_a_digest_file_left_by_a_crash_is_superseded(ctx: Context, clock: ManualClock) -> None:
    """Killed between writing the file and the commit: the next digest takes the number."""
    record(ctx, 3)
    with pytest.raises(RuntimeError), ctx.uow(write=True) as uow:
        audit.write_digest(uow, ctx.audit.signer, ctx.audit.digest_dir)
        raise RuntimeError("killed before the commit")
    clock.advance(minutes=5)
    write_digest(ctx)
    assert len(list(ctx.audit.digest_dir.iterdir())) == 2
    assert verify(ctx).ok


def test_digests_signed_by_another_key_are_refused(
    ctx: Context, digests: list[audit.Digest]
) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    with ctx.uow() as uow:
        report = audit.verify_trail(
            uow,
            other,
            now=ctx.clock.now(),
            max_digest_age=ctx.audit.max_digest_age,
            digest_dir=ctx.audit.digest_dir,
        )
    assert not report.ok
    assert f"it names key {digests[0].key_id}" in report.findings[0].message


def test_a_deleted_head_row_stops_appends_and_is_named(
    ctx: Context, digests: list[audit.Digest]
) -> None:
    tamper(ctx, "DELETE FROM audit_head")
    assert "the audit head row is missing (deleted)" in messages(verify(ctx))
    with (
        pytest.raises(InternalError, match="audit head row is missing"),
        ctx.uow(write=True) as uow,
    ):
        audit.record_event(uow, entry(99))


def test_an_unreadable_value_is_named(tmp_path: Path, sqlite_url: str) -> None:
    """SQLite stores what it is given; a value its column cannot read back is damage too."""
    context = build_context(make_settings(tmp_path / "home", sqlite_url), clock=ManualClock())
    try:
        record(context, 6)
        write_digest(context)
        tamper(context, "UPDATE audit_events SET time = 'yesterday' WHERE seq = 4")
        (message,) = messages(verify(context))
        assert message.startswith("record 4: unreadable, changed to a value its column cannot")
    finally:
        context.close()


def test_a_flood_of_findings_is_cut_with_a_count(ctx: Context) -> None:
    with ctx.uow(write=True) as uow:
        for n in range(2004):
            audit.record_event(uow, entry(n))
    write_digest(ctx)
    tamper(ctx, "UPDATE audit_events SET principal = 'mallory' WHERE MOD(seq, 2) = 0")
    report = verify(ctx)
    assert len(report.findings) == 1001
    assert report.findings[999].message == "record 2000: contents changed (hash mismatch)"
    assert (report.findings[-1].kind, report.findings[-1].message) == ("truncated", "... 2 more")


def test_verification_reads_one_snapshot(ctx: Context, digests: list[audit.Digest]) -> None:
    """On PostgreSQL the check runs in repeatable read: appends during it stay invisible."""
    with ctx.uow() as uow:
        audit.verify_trail(
            uow,
            ctx.audit.signer.public_key,
            now=ctx.clock.now(),
            max_digest_age=ctx.audit.max_digest_age,
            digest_dir=ctx.audit.digest_dir,
        )
        record(ctx, 1, start=99)  # another transaction commits meanwhile
        count = uow.session.scalar(select(func.count()).select_from(AuditEventRow))
    assert count == 25
