"""Digests: signed, chained, written as rows and files every period, also when idle."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ketch import audit
from ketch.audit.chain import GENESIS_HASH
from ketch.audit.digests import Digest
from ketch.audit.signing import public_key_path, signature_valid
from ketch.audit.tables import AuditDigestRow
from ketch.server.context import Context
from support.audit import ManualClock, record, verify, write_digest


def _digest_count(ctx: Context) -> int:
    with ctx.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(AuditDigestRow)) or 0)


def test_the_key_is_made_on_first_use_private_and_stable(ctx: Context) -> None:
    key_path = ctx.audit.key_path
    assert not key_path.exists()
    signer = ctx.audit.signer
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_path.parent).st_mode) == 0o700
    public = audit.load_public_key(public_key_path(key_path))
    assert public.public_bytes_raw() == signer.public_key.public_bytes_raw()
    assert audit.load_or_create_signer(key_path).key_id == signer.key_id


def test_a_key_others_may_read_is_refused(tmp_path: Path) -> None:
    key_path = tmp_path / "audit" / "signing-key.pem"
    audit.load_or_create_signer(key_path)
    key_path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        audit.load_or_create_signer(key_path)


def test_processes_starting_at_once_share_one_key(tmp_path: Path) -> None:
    key_path = tmp_path / "audit" / "signing-key.pem"
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def load() -> None:
        barrier.wait()
        ids.append(audit.load_or_create_signer(key_path).key_id)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ids) == 8 and len(set(ids)) == 1
    assert [p.name for p in key_path.parent.iterdir() if p.name.startswith(".")] == []


def test_a_digest_is_signed_and_stored_as_row_and_file(ctx: Context) -> None:
    record(ctx, 3)
    digest = write_digest(ctx)
    assert (digest.id, digest.first_seq, digest.last_seq) == (1, 1, 3)
    assert digest.previous_digest_hash == GENESIS_HASH
    assert signature_valid(ctx.audit.signer.public_key, digest.payload(), digest.signature)
    with ctx.uow() as uow:
        row = uow.session.get(AuditDigestRow, 1)
        assert row is not None and Digest.from_row(row) == digest
    path = ctx.audit.digest_dir / digest.file_name
    assert path.parent == ctx.settings.home / "audit" / "digests"
    assert Digest.from_json(json.loads(path.read_text())) == digest


def test_digests_chain_and_cover_consecutive_ranges_even_when_empty(ctx: Context) -> None:
    record(ctx, 2)
    first = write_digest(ctx)
    empty = write_digest(ctx)
    record(ctx, 3, start=2)
    third = write_digest(ctx)
    assert (empty.first_seq, empty.last_seq, empty.head_hash) == (3, 2, first.head_hash)
    assert empty.previous_digest_hash == first.digest_hash
    assert (third.id, third.first_seq, third.last_seq) == (3, 3, 5)
    assert third.previous_digest_hash == empty.digest_hash
    assert verify(ctx).ok


def test_the_writer_writes_one_digest_per_period_also_when_idle(
    ctx: Context, clock: ManualClock
) -> None:
    writer = audit.DigestWriter(ctx.uow, ctx.audit)
    period = ctx.audit.digest_interval.total_seconds()
    assert writer.tick() == period  # no digest yet: one is written at once
    assert _digest_count(ctx) == 1
    clock.advance(seconds=period / 2)
    assert writer.tick() == period / 2
    assert _digest_count(ctx) == 1
    clock.advance(seconds=period / 2)
    writer.tick()  # nothing was recorded, a digest is still due
    assert _digest_count(ctx) == 2


def test_several_writers_still_write_one_digest_per_period(ctx: Context) -> None:
    writers = [audit.DigestWriter(ctx.uow, ctx.audit) for _ in range(4)]
    barrier = threading.Barrier(len(writers))
    failures: list[BaseException] = []

    def tick(writer: audit.DigestWriter) -> None:
        barrier.wait()
        try:
            writer.tick()
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=tick, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert _digest_count(ctx) == 1


def test_running_writes_a_start_up_digest_and_stops_with_the_block(ctx: Context) -> None:
    writer = audit.DigestWriter(ctx.uow, ctx.audit)
    before = {t.name for t in threading.enumerate()}
    with writer.running():
        assert _digest_count(ctx) == 1
        assert "audit-digests" in {t.name for t in threading.enumerate()} - before
    assert "audit-digests" not in {t.name for t in threading.enumerate()}


def test_a_failed_tick_is_retried_not_fatal(ctx: Context) -> None:
    ctx.audit.key_path.parent.mkdir(parents=True)
    ctx.audit.key_path.write_text("not a key")
    ctx.audit.key_path.chmod(0o600)
    # A short period, so that a retry (after at most one period) comes quickly.
    trail = audit.AuditTrail(ctx.audit.key_path, ctx.audit.digest_dir, timedelta(milliseconds=50))
    writer = audit.DigestWriter(ctx.uow, trail)
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,))
    thread.start()
    try:
        thread.join(timeout=0.5)
        assert thread.is_alive()  # failing, logging, waiting to retry
        assert _digest_count(ctx) == 0
        ctx.audit.key_path.unlink()  # the fault goes away: the next try makes a key
        deadline = time.monotonic() + 30
        while _digest_count(ctx) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _digest_count(ctx) == 1
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
