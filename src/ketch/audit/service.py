"""Appending to the audit trail and reading it back.

``record_event`` runs inside the caller's write unit of work, so a record commits or
rolls back with the change it describes. Appends are serialised by locking the single
``audit_head`` row: on PostgreSQL with ``SELECT ... FOR UPDATE`` (several server
processes may write at once), on SQLite by the write lock that ``BEGIN IMMEDIATE``
already holds. Under that lock the next sequence number and the previous hash are
read and the head is advanced, so sequence numbers are gapless and the chain is
linear whatever the concurrency; a rolled-back transaction gives its number back.

Every string is passed through :func:`ketch.core.logging.redact` before it is stored,
as a second line of defence: callers must never hand in secrets in the first place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, select

from ketch.audit.chain import record_hash
from ketch.audit.tables import AuditEventRow, AuditHeadRow
from ketch.core.errors import InternalError, InvalidInput
from ketch.core.logging import redact
from ketch.schemas.audit import AuditEvent, AuditEventFilter, AuditOutcome, DetailValue
from ketch.store.paging import fetch_page
from ketch.store.session import UnitOfWork

Outcome = AuditOutcome
"""How an audited request ended (the wire enum, so records and API agree)."""

MAX_DETAILS = 32
_SECRET_KEY = re.compile(r"(?i)password|secret|token|credential|api[_-]?key|authorization")
_TEXT_FIELDS = (
    "principal",
    "principal_id",
    "account",
    "action",
    "resource",
    "request_id",
    "source_ip",
    "user_agent",
    "error_code",
)


def _column_width(name: str) -> int:
    column_type = AuditEventRow.__table__.c[name].type
    assert isinstance(column_type, String) and column_type.length is not None
    return column_type.length


# Values longer than their ``audit_events`` column are cut, never refused, so an
# oversized header cannot make the audited change fail.
_LIMITS = {name: _column_width(name) for name in _TEXT_FIELDS}
_DETAIL_KEY_LIMIT = 64
_DETAIL_VALUE_LIMIT = 1024
_POLICY_ID_LIMIT = 128


@dataclass(frozen=True)
class AuditEntry:
    """What happened, as the caller knows it; ``record_event`` adds time, seq and hashes."""

    principal: str | None
    principal_id: str | None
    account: str | None
    action: str
    resource: str | None
    request_id: str | None
    source_ip: str | None
    user_agent: str | None
    outcome: Outcome
    error_code: str | None = None
    policy_ids: tuple[str, ...] = ()
    details: Mapping[str, DetailValue] = field(default_factory=dict)


def lock_head(uow: UnitOfWork) -> AuditHeadRow:
    """The head row, locked until the transaction ends (a no-op lock on SQLite)."""
    head = uow.session.scalars(select(AuditHeadRow).with_for_update()).one_or_none()
    if head is None:
        raise InternalError(
            "the audit head row is missing: the audit table was tampered with or the "
            "schema was not created by `ketch db upgrade`; run `ketch audit verify`"
        )
    return head


def record_event(uow: UnitOfWork, entry: AuditEntry) -> int:
    """Append ``entry`` in ``uow``'s transaction and return its sequence number.

    Call it last in a write unit of work: it holds the head lock until the commit.
    """
    head = lock_head(uow)
    fields: dict[str, Any] = {
        name: _clean(getattr(entry, name), limit) for name, limit in _LIMITS.items()
    }
    fields.update(
        seq=head.last_seq + 1,
        # Read under the lock, so time never goes backwards along the sequence.
        time=uow.clock.now(),
        outcome=Outcome(entry.outcome).value,
        policy_ids=[_clean(p, _POLICY_ID_LIMIT) for p in entry.policy_ids],
        details=_clean_details(entry.details),
        prev_hash=head.last_hash,
    )
    row = AuditEventRow(**fields, hash=record_hash(fields))
    uow.session.add(row)
    head.last_seq = row.seq
    head.last_hash = row.hash
    uow.session.flush()
    return row.seq


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    # PostgreSQL refuses NUL characters in text; dropping them keeps the write alive.
    return redact(str(value)).replace("\x00", "")[:limit]


def _clean_details(details: Mapping[str, DetailValue]) -> dict[str, DetailValue]:
    if len(details) > MAX_DETAILS:
        raise ValueError(f"audit details hold at most {MAX_DETAILS} entries, not {len(details)}")
    cleaned: dict[str, DetailValue] = {}
    for key, value in details.items():
        name = _clean(key, _DETAIL_KEY_LIMIT) or ""
        if _SECRET_KEY.search(name) and value is not None:
            cleaned[name] = "***"
        elif isinstance(value, str):
            cleaned[name] = _clean(value, _DETAIL_VALUE_LIMIT)
        elif value is None or isinstance(value, bool | int):
            cleaned[name] = value
        else:
            raise ValueError(f"audit detail {key!r} must be a str, int, bool or None")
    return cleaned


def list_events(
    uow: UnitOfWork, filters: AuditEventFilter, *, limit: int, after: str | None = None
) -> tuple[list[AuditEvent], str | None]:
    """Records matching ``filters`` in sequence order (newest first if asked).

    ``after`` is the cursor key returned with the previous page.
    """
    query = select(AuditEventRow)
    for column, value in (
        (AuditEventRow.account, filters.account),
        (AuditEventRow.principal, filters.principal),
        (AuditEventRow.action, filters.action),
        (AuditEventRow.outcome, filters.outcome.value if filters.outcome else None),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.start_time is not None:
        query = query.where(AuditEventRow.time >= filters.start_time)
    if filters.end_time is not None:
        query = query.where(AuditEventRow.time < filters.end_time)
    if after is not None:
        cursor = _cursor(after)
        query = query.where(
            AuditEventRow.seq < cursor if filters.newest_first else AuditEventRow.seq > cursor
        )
    order = AuditEventRow.seq.desc() if filters.newest_first else AuditEventRow.seq
    rows, next_key = fetch_page(
        uow.session, query.order_by(order), limit=limit, key_of=lambda r: str(r.seq)
    )
    return [_to_schema(row) for row in rows], next_key


def _cursor(after: str) -> int:
    if not after.isdigit():
        raise InvalidInput(
            "next_token is not valid for this list; pass the value from the last page"
        )
    return int(after)


def _to_schema(row: AuditEventRow) -> AuditEvent:
    return AuditEvent.model_validate(row, from_attributes=True)
