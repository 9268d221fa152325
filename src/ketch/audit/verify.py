"""Verifying the audit trail: the records, the head row, the digests and their files.

Checks, in one consistent snapshot of the database:

- the records (``_chain_scan``): gapless sequence, each hash, each link;
- the head row: it names the newest record ketch wrote, so a deleted tail or a record
  added behind ketch's back shows up even before the next digest;
- the digest rows: numbered without gaps, signed with the key, linked to each other,
  and what each signed (the hash of record ``last_seq``) still holds;
- the digest files: each row has its file, each file has its row (a file whose row is
  gone means deleted digests), and what each file signed still holds;
- freshness: the newest digest is younger than ``max_digest_age``.

Each finding names the record or digest and what happened to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from ketch.audit._chain_scan import ChainScan, finding, scan_chain, subject
from ketch.audit.chain import GENESIS_HASH, sha256_hex
from ketch.audit.digests import Digest, read_digest_files
from ketch.audit.signing import key_id_of, signature_valid
from ketch.audit.tables import AuditDigestRow, AuditHeadRow
from ketch.schemas.audit import AuditFinding, AuditFindingKind, AuditVerifyReport
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)

Kind = AuditFindingKind
PENDING_FILE_GRACE = timedelta(seconds=60)
"""A digest file this young without its row may belong to a commit still under way."""
MAX_FINDINGS = 1000


@dataclass(frozen=True)
class _Checked:
    """A digest with the verdict on its own signature."""

    digest: Digest
    valid: bool


def verify_trail(
    uow: UnitOfWork,
    public_key: Ed25519PublicKey,
    *,
    now: datetime,
    max_digest_age: timedelta,
    digest_dir: Path,
) -> AuditVerifyReport:
    """Check the whole trail and report every problem found (``ok`` when none).

    Must be the first thing done in ``uow``: on PostgreSQL it switches the transaction
    to a repeatable-read snapshot, so appends during the check do not look like damage.
    """
    if uow.session.get_bind().dialect.name == "postgresql":
        uow.session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
    rows = [
        _check(Digest.from_row(row), public_key)
        for row in uow.session.scalars(select(AuditDigestRow).order_by(AuditDigestRow.id))
    ]
    files = [
        (path, _check(d, public_key) if d else None) for path, d in read_digest_files(digest_dir)
    ]
    wanted = {c.digest.last_seq for c in rows} | {c.digest.last_seq for _, c in files if c}
    scan = scan_chain(uow, wanted)
    findings = list(scan.findings)
    findings += _check_head(uow, scan)
    findings += _check_digest_rows(rows, files, scan, public_key)
    findings += _check_digest_files(rows, files, scan, now, digest_dir)
    newest = next((c.digest for c in reversed(rows) if c.valid), None)
    findings += _check_fresh(newest, now, max_digest_age)
    if len(findings) > MAX_FINDINGS:
        more = len(findings) - MAX_FINDINGS
        findings = [*findings[:MAX_FINDINGS], finding(Kind.TRUNCATED, f"... {more} more")]
    report = AuditVerifyReport(
        ok=not findings,
        checked_at=now,
        records_checked=scan.count,
        newest_seq=scan.newest_seq,
        digests_checked=len(rows),
        newest_digest_at=newest.time if newest else None,
        findings=findings,
    )
    if report.ok:
        logger.info("audit trail verified: %d records, %d digests", scan.count, len(rows))
    else:
        logger.warning("audit trail verification failed with %d findings", len(findings))
    return report


def _check(digest: Digest, public_key: Ed25519PublicKey) -> _Checked:
    payload = digest.payload()
    valid = sha256_hex(payload) == digest.digest_hash and signature_valid(
        public_key, payload, digest.signature
    )
    return _Checked(digest, valid)


def _check_head(uow: UnitOfWork, scan: ChainScan) -> list[AuditFinding]:
    head = uow.session.get(AuditHeadRow, 1)
    if head is None:
        return [finding(Kind.HEAD_MISMATCH, "the audit head row is missing (deleted)")]
    newest = scan.newest_seq
    if head.last_seq > newest:
        message = (
            f"{subject(newest + 1, head.last_seq)} missing: newest records deleted (the audit "
            f"head says {head.last_seq} is the newest record, the newest present is {newest})"
        )
        return [finding(Kind.NEWEST_RECORDS_DELETED, message, newest + 1, head.last_seq)]
    if head.last_seq < newest:
        message = (
            f"{subject(head.last_seq + 1, newest)}: inserted behind ketch's back (the audit "
            f"head says {head.last_seq} is the newest record ketch wrote)"
        )
        return [finding(Kind.RECORD_INSERTED, message, head.last_seq + 1, newest)]
    if scan.newest_hash is not None and head.last_hash != scan.newest_hash:
        message = f"record {newest}: does not match the audit head's hash (replaced)"
        return [finding(Kind.HEAD_MISMATCH, message, newest, newest)]
    return []


def _check_digest_rows(
    rows: list[_Checked],
    files: list[tuple[Path, _Checked | None]],
    scan: ChainScan,
    public_key: Ed25519PublicKey,
) -> list[AuditFinding]:
    findings: list[AuditFinding] = []
    file_ids = {c.digest.id: path.name for path, c in files if c and c.valid}
    expected = 1
    previous: _Checked | None = None
    for checked in rows:
        digest = checked.digest
        if digest.id > expected:
            findings.append(_missing_digests(expected, digest.id - 1, file_ids))
        if not checked.valid:
            findings.append(_changed_digest(digest, public_key))
        else:
            findings += _link_problems(checked, previous if digest.id == expected else None)
        previous, expected = checked, digest.id + 1
    findings += _attestation_problems([c.digest for c in rows if c.valid], scan, "digest")
    return findings


def _missing_digests(first: int, last: int, file_ids: dict[int, str]) -> AuditFinding:
    named = f"digest {first}" if first == last else f"digests {first}-{last}"
    kept = [name for digest_id, name in sorted(file_ids.items()) if first <= digest_id <= last]
    remains = f"; file {', '.join(kept)} remains" if kept else ""
    message = f"{named} missing from the database (gap in digest numbers{remains})"
    return finding(Kind.DIGEST_MISSING, message, digest_id=first)


def _changed_digest(digest: Digest, public_key: Ed25519PublicKey) -> AuditFinding:
    expected_key = key_id_of(public_key)
    other_key = ""
    if digest.key_id != expected_key:
        other_key = f"; it names key {digest.key_id}, this server's key is {expected_key}"
    message = f"digest {digest.id}: signature invalid (changed{other_key})"
    return finding(Kind.DIGEST_CHANGED, message, digest_id=digest.id)


def _link_problems(checked: _Checked, previous: _Checked | None) -> list[AuditFinding]:
    """Whether a valid digest continues the one before it (unless that one is damaged)."""
    digest = checked.digest
    if digest.id == 1:
        previous_hash, next_seq = GENESIS_HASH, 1
    elif previous is None or not previous.valid:
        return []
    else:
        previous_hash, next_seq = previous.digest.digest_hash, previous.digest.last_seq + 1
    if digest.previous_digest_hash != previous_hash or digest.first_seq != next_seq:
        message = (
            f"digest {digest.id}: chain broken (previous digest hash or first record does "
            f"not match digest {digest.id - 1})"
        )
        return [finding(Kind.DIGEST_CHAIN_BROKEN, message, digest_id=digest.id)]
    return []


def _attestation_problems(
    digests: list[Digest], scan: ChainScan, source: str
) -> list[AuditFinding]:
    """Whether the records still hold what validly signed digests say about them."""
    findings: list[AuditFinding] = []
    beyond = [d for d in digests if d.last_seq > scan.newest_seq]
    if beyond:
        digest = max(beyond, key=lambda d: (d.last_seq, d.id))
        message = (
            f"{source} {digest.id} covers records up to {digest.last_seq} but the newest "
            f"record is {scan.newest_seq}: newest records deleted"
        )
        findings.append(
            finding(
                Kind.NEWEST_RECORDS_DELETED,
                message,
                scan.newest_seq + 1,
                digest.last_seq,
                digest_id=digest.id,
            )
        )
    differing = [
        d for d in digests if d.last_seq in scan.hash_at and scan.hash_at[d.last_seq] != d.head_hash
    ]
    if differing:
        digest = min(differing, key=lambda d: d.last_seq)
        later = (
            f" (and {len(differing) - 1} later digests disagree too)" if len(differing) > 1 else ""
        )
        message = (
            f"{source} {digest.id} signed record {digest.last_seq} with hash "
            f"{digest.head_hash[:12]}… but it now has {scan.hash_at[digest.last_seq][:12]}…: "
            f"records up to {digest.last_seq} were rewritten{later}"
        )
        findings.append(
            finding(
                Kind.DIGEST_MISMATCH, message, digest.last_seq, digest.last_seq, digest_id=digest.id
            )
        )
    return findings


def _check_digest_files(
    rows: list[_Checked],
    files: list[tuple[Path, _Checked | None]],
    scan: ChainScan,
    now: datetime,
    digest_dir: Path,
) -> list[AuditFinding]:
    findings: list[AuditFinding] = []
    row_by_id = {c.digest.id: c for c in rows}
    newest_row_id = rows[-1].digest.id if rows else 0
    orphans: list[Digest] = []
    for path, checked in files:
        if checked is None or not checked.valid:
            what = "not a readable digest" if checked is None else "signature invalid"
            message = f"digest file {path.name}: {what} (file changed)"
            findings.append(finding(Kind.DIGEST_FILE_CHANGED, message))
            continue
        digest = checked.digest
        if path.name != digest.file_name:
            message = f"digest file {path.name}: holds digest {digest.file_name} (file renamed)"
            findings.append(finding(Kind.DIGEST_FILE_CHANGED, message, digest_id=digest.id))
        row = row_by_id.get(digest.id)
        if row is not None and row.digest.digest_hash == digest.digest_hash:
            continue
        orphans.append(digest)
        if digest.id > newest_row_id and now - digest.time > PENDING_FILE_GRACE:
            message = (
                f"digest {digest.id} missing from the database (its file {path.name} "
                "remains): newest digests deleted"
            )
            findings.append(finding(Kind.DIGEST_MISSING, message, digest_id=digest.id))
    present = {path.name for path, _ in files}
    for checked in rows:
        if checked.valid and checked.digest.file_name not in present:
            message = (
                f"digest {checked.digest.id}: its file {checked.digest.file_name} is missing "
                f"from {digest_dir}"
            )
            findings.append(finding(Kind.DIGEST_FILE_MISSING, message, digest_id=checked.digest.id))
    # A file superseded after a crash is harmless while what it signed still holds.
    findings += _attestation_problems(orphans, scan, "digest file of digest")
    return findings


def _check_fresh(newest: Digest | None, now: datetime, limit: timedelta) -> list[AuditFinding]:
    if newest is None:
        message = "no valid digest has been written: the records are not signed (stale)"
        return [finding(Kind.STALE, message)]
    age = now - newest.time
    if age > limit:
        message = (
            f"newest digest is {_duration(age)} old (limit {_duration(limit)}): stale "
            f"(digest {newest.id}, written {newest.time.isoformat(timespec='seconds')})"
        )
        return [finding(Kind.STALE, message, digest_id=newest.id)]
    return []


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            return f"{whole}{unit}" + (f" {_duration(timedelta(seconds=rest))}" if rest else "")
    return f"{seconds}s"
