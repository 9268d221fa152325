"""Checking the records: one streaming pass over the chain, then a diagnosis of damage.

The pass checks, record by record, that the sequence has no gap, that each record's
hash matches its contents and that it links to the record before it. Only damaged
records are kept in memory. The diagnosis then names what happened to them, using the
fact that a record's hash covers its sequence number: a record that fails its hash at
its current place but passes it at the place after its chain predecessor was *moved*
(two moved into each other's place were *swapped*); a record displaced from its place
by another was *inserted*; a record that fails its hash everywhere was *changed*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import Select, select

from ketch.audit.chain import GENESIS_HASH, record_hash
from ketch.audit.tables import AuditEventRow
from ketch.schemas.audit import AuditFinding, AuditFindingKind
from ketch.store.session import UnitOfWork

BATCH = 1000
MAX_KEPT = 10_000
"""Damaged records kept with their contents for the diagnosis; the rest count as changed."""

Kind = AuditFindingKind


@dataclass
class _Damaged:
    seq: int
    hash: str
    prev_hash: str
    content_ok: bool  # False: the hash fails; True: only the link to the record before does
    fields: Mapping[str, Any] | None  # None beyond MAX_KEPT


@dataclass
class ChainScan:
    """What the records pass found, and what the digest checks need from it."""

    count: int = 0
    newest_seq: int = 0
    newest_hash: str | None = GENESIS_HASH  # None when the newest record is unreadable
    hash_at: dict[int, str] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    findings: list[AuditFinding] = field(default_factory=list)

    def exists(self, seq: int) -> bool:
        """Whether a record with this sequence number was read."""
        in_gap = any(first <= seq <= last for first, last in self.gaps)
        return 1 <= seq <= self.newest_seq and not in_gap


class _Verdict(Enum):
    CHANGED = "changed"
    MOVED = "moved"
    INSERTED = "inserted"
    CHAIN_BROKEN = "chain broken"


@dataclass(frozen=True)
class _Unreadable:
    """A record with a value its column type cannot read back (SQLite stores anything)."""

    seq: int
    error: str


def scan_chain(uow: UnitOfWork, wanted: Iterable[int]) -> ChainScan:
    """Check every record; keep the stored hashes of the ``wanted`` sequence numbers."""
    wanted_seqs = set(wanted)
    scan = ChainScan()
    damaged: dict[int, _Damaged] = {}
    expected: int = 1
    previous_hash: str | None = GENESIS_HASH  # None: unknown, no link to check
    for item in _records(uow):
        seq = item.seq if isinstance(item, _Unreadable) else int(item["seq"])
        if seq < 1:
            message = f"record {seq}: inserted (sequence numbers start at 1)"
            scan.findings.append(finding(Kind.RECORD_INSERTED, message, seq, seq))
            continue
        if seq > expected:
            scan.gaps.append((expected, seq - 1))
            message = f"{subject(expected, seq - 1)} missing (sequence gap)"
            scan.findings.append(finding(Kind.RECORD_MISSING, message, expected, seq - 1))
            previous_hash = None
        scan.count += 1
        scan.newest_seq, expected = seq, seq + 1
        if isinstance(item, _Unreadable):
            message = (
                f"record {seq}: unreadable, changed to a value its column cannot hold "
                f"({item.error})"
            )
            scan.findings.append(finding(Kind.RECORD_CHANGED, message, seq, seq))
            scan.newest_hash = previous_hash = None
            continue
        link_ok = None if previous_hash is None else item["prev_hash"] == previous_hash
        content_ok = record_hash(item) == item["hash"]
        if not content_ok or link_ok is False:
            keep = item if len(damaged) < MAX_KEPT else None
            damaged[seq] = _Damaged(seq, item["hash"], item["prev_hash"], content_ok, keep)
        if seq in wanted_seqs:
            scan.hash_at[seq] = item["hash"]
        scan.newest_hash = previous_hash = item["hash"]
    if damaged:
        seq_of = _seqs_of(uow, {d.prev_hash for d in damaged.values()})
        scan.findings += _diagnose(damaged, seq_of, scan.exists)
    return scan


def _records(uow: UnitOfWork) -> Iterator[dict[str, Any] | _Unreadable]:
    """Every record in sequence order, a batch per query (keyset), nothing held back."""
    table = AuditEventRow.__table__
    after: int | None = None
    while True:
        query = select(table).order_by(table.c.seq).limit(BATCH)
        if after is not None:
            query = query.where(table.c.seq > after)
        try:
            batch: list[dict[str, Any] | _Unreadable] = [
                row._asdict() for row in uow.session.execute(query)
            ]
        except ValueError:
            batch = list(_one_by_one(uow, query))
        if not batch:
            return
        yield from batch
        last = batch[-1]
        after = last.seq if isinstance(last, _Unreadable) else int(last["seq"])


def _one_by_one(uow: UnitOfWork, batch: Select[Any]) -> Iterator[dict[str, Any] | _Unreadable]:
    """The records of a batch that failed to load, each on its own, to name the bad one."""
    table = AuditEventRow.__table__
    seqs = uow.session.scalars(batch.with_only_columns(table.c.seq)).all()
    for seq in seqs:
        try:
            yield uow.session.execute(select(table).where(table.c.seq == seq)).one()._asdict()
        except ValueError as exc:
            yield _Unreadable(seq, str(exc))


def _seqs_of(uow: UnitOfWork, hashes: set[str]) -> dict[str, int]:
    """Where the records with these stored hashes sit now (one more streaming pass)."""
    found = {GENESIS_HASH: 0}
    query = select(AuditEventRow.seq, AuditEventRow.hash).order_by(AuditEventRow.seq)
    for seq, stored in uow.session.execute(query.execution_options(yield_per=BATCH)):
        if stored in hashes and stored not in found:
            found[stored] = seq
    return found


def _diagnose(
    damaged: dict[int, _Damaged], seq_of: dict[str, int], exists: Callable[[int], bool]
) -> list[AuditFinding]:
    originals = _original_seqs(damaged, seq_of)
    verdicts: dict[int, tuple[_Verdict, int | None]] = {}
    for seq, record in damaged.items():
        original = originals.get(seq)
        if not record.content_ok:
            moved = original is not None and original != seq
            verdicts[seq] = (_Verdict.MOVED, original) if moved else (_Verdict.CHANGED, None)
    # A record whose place another record claims was inserted there.
    for seq, (verdict, original) in list(verdicts.items()):
        if verdict is _Verdict.MOVED and original is not None:
            displaced = verdicts.get(original)
            if exists(original) and (displaced is None or displaced[0] is not _Verdict.MOVED):
                verdicts[original] = (_Verdict.INSERTED, seq)
    for seq, record in damaged.items():
        if record.content_ok and seq not in verdicts and seq - 1 not in verdicts:
            verdicts[seq] = (_Verdict.CHAIN_BROKEN, None)
    return list(_findings(verdicts))


def _original_seqs(damaged: dict[int, _Damaged], seq_of: dict[str, int]) -> dict[int, int]:
    """The sequence number each damaged record was written with, where it can be proven."""
    resolved: dict[int, int | None] = {}
    for start in damaged:
        if start in resolved:
            continue
        stack = [start]
        while stack:
            seq = stack[-1]
            record = damaged[seq]
            if record.content_ok or record.fields is None:
                resolved[seq] = seq if record.content_ok else None
                stack.pop()
                continue
            predecessor = seq_of.get(record.prev_hash)
            if predecessor in damaged and predecessor not in resolved:
                if predecessor in stack:  # a loop of forged links proves nothing
                    resolved[seq] = None
                    stack.pop()
                else:
                    stack.append(predecessor)
                continue
            base = resolved.get(predecessor) if predecessor in damaged else predecessor
            candidate = None if base is None else base + 1
            if candidate is not None and record_hash({**record.fields, "seq": candidate}) != (
                record.hash
            ):
                candidate = None
            resolved[seq] = candidate
            stack.pop()
    return {seq: original for seq, original in resolved.items() if original is not None}


def _findings(verdicts: dict[int, tuple[_Verdict, int | None]]) -> Iterator[AuditFinding]:
    done: set[int] = set()
    for seq in sorted(verdicts):
        if seq in done:
            continue
        verdict, other = verdicts[seq]
        if (
            verdict is _Verdict.MOVED
            and other is not None
            and verdicts.get(other) == (_Verdict.MOVED, seq)
        ):
            done |= {seq, other}
            message = f"records {seq} and {other} swapped (out of order)"
            yield finding(Kind.RECORDS_SWAPPED, message, seq, other)
            continue
        last = seq
        while _continues(verdicts, done, seq, last + 1):
            last += 1
        done |= set(range(seq, last + 1))
        yield _describe(verdict, seq, last, other)


def _continues(
    verdicts: dict[int, tuple[_Verdict, int | None]], done: set[int], first: int, seq: int
) -> bool:
    """Whether ``seq`` extends the run of same-verdict records that starts at ``first``."""
    if seq in done or seq not in verdicts:
        return False
    verdict, other = verdicts[seq]
    first_verdict, first_other = verdicts[first]
    if verdict is not first_verdict or verdict not in (_Verdict.CHANGED, _Verdict.MOVED):
        return False
    if verdict is _Verdict.MOVED:
        assert other is not None and first_other is not None
        return other - seq == first_other - first
    return True


def _describe(verdict: _Verdict, first: int, last: int, other: int | None) -> AuditFinding:
    named = subject(first, last)
    if verdict is _Verdict.CHANGED:
        return finding(
            Kind.RECORD_CHANGED, f"{named}: contents changed (hash mismatch)", first, last
        )
    if verdict is _Verdict.MOVED:
        assert other is not None
        held = (
            f"the record written as {other}"
            if first == last
            else f"the records written as {other}-{other + last - first}"
        )
        message = f"{named}: out of order (holds {held}; chain broken)"
        return finding(Kind.RECORD_OUT_OF_ORDER, message, first, last)
    if verdict is _Verdict.INSERTED:
        message = f"{named}: inserted (the record first written as {first} now sits at {other})"
        return finding(Kind.RECORD_INSERTED, message, first, last)
    message = (
        f"{named}: chain broken (previous hash does not match record {first - 1}): "
        f"record {first - 1} was rewritten with a recomputed hash, or records were reordered"
    )
    return finding(Kind.CHAIN_BROKEN, message, first, last)


def subject(first: int, last: int) -> str:
    """``record 7`` or ``records 7-9``: how every finding names its records."""
    return f"record {first}" if first == last else f"records {first}-{last}"


def finding(
    kind: AuditFindingKind,
    message: str,
    first_seq: int | None = None,
    last_seq: int | None = None,
    *,
    digest_id: int | None = None,
) -> AuditFinding:
    return AuditFinding(
        kind=kind.value,
        message=message,
        first_seq=first_seq,
        last_seq=last_seq,
        digest_id=digest_id,
    )
