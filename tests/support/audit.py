"""Audit test helpers: entries, a clock that moves only when told, verifying, tampering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from ketch import audit
from ketch.schemas.audit import AuditVerifyReport
from ketch.server.context import Context

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class ManualClock:
    """Tells the same time until :meth:`advance` is called."""

    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def entry(n: int = 0, **fields: Any) -> audit.AuditEntry:
    """An entry whose action and request id carry ``n``, with ``fields`` overriding."""
    values: dict[str, Any] = {
        "principal": "alice",
        "principal_id": "u-alice",
        "account": "fraud-dev",
        "action": f"Action{n}",
        "resource": f"krn:ketch:fraud-dev:model-group/m{n}",
        "request_id": f"req-{n}",
        "source_ip": "127.0.0.1",
        "user_agent": "ketch-tests/1.0",
        "outcome": audit.Outcome.SUCCESS,
    }
    values.update(fields)
    return audit.AuditEntry(**values)


def record(context: Context, count: int, start: int = 0, **fields: Any) -> list[int]:
    """Append ``count`` entries, one transaction each; their sequence numbers."""
    seqs = []
    for n in range(start, start + count):
        with context.uow(write=True) as uow:
            seqs.append(audit.record_event(uow, entry(n, **fields)))
    return seqs


def write_digest(context: Context) -> audit.Digest:
    return audit.DigestWriter(context.uow, context.audit).write_now()


def verify(
    context: Context, *, now: datetime | None = None, max_age: timedelta = timedelta(days=1)
) -> AuditVerifyReport:
    with context.uow() as uow:
        return audit.verify_trail(
            uow,
            context.audit.signer.public_key,
            now=now or context.clock.now(),
            max_digest_age=max_age,
            digest_dir=context.audit.digest_dir,
        )


def messages(report: AuditVerifyReport) -> list[str]:
    return [finding.message for finding in report.findings]


def tamper(context: Context, *statements: str, **params: Any) -> None:
    """Run SQL straight against the database, as an intruder would."""
    with context.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)
