"""Routes of the audit service: list the records, verify the trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from ketch import audit
from ketch.api import resources
from ketch.api.deps import Guard, authorize
from ketch.api.pagination import (
    DEFAULT_MAX_RESULTS,
    MaxResults,
    NextToken,
    decode_token,
    encode_token,
)
from ketch.iam import Action
from ketch.schemas.audit import AuditEvent, AuditEventFilter, AuditOutcome, AuditVerifyReport
from ketch.schemas.common import Page

router = APIRouter(tags=["audit"])

TimeQuery = Annotated[
    AwareDatetime | None,
    Query(description="ISO 8601 with a zone, e.g. 2026-11-23T10:00:00Z."),
]


@router.get("/audit/events", summary="List audit records")
def list_audit_events(
    guard: Annotated[Guard, Depends(authorize(Action.LIST_AUDIT_EVENTS, resources.organization()))],
    account: Annotated[str | None, Query(max_length=64)] = None,
    principal: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    outcome: AuditOutcome | None = None,
    start_time: TimeQuery = None,
    end_time: TimeQuery = None,
    newest_first: bool = False,
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[AuditEvent]:
    filters = AuditEventFilter(
        account=account,
        principal=principal,
        action=action,
        outcome=outcome,
        start_time=start_time,
        end_time=end_time,
        newest_first=newest_first,
    )
    # Each order has its own cursor direction, so a token from one is refused by the other.
    listing = "audit-events-newest-first" if newest_first else "audit-events"
    after = decode_token(listing, next_token)
    with guard.context.uow() as uow:
        items, last = audit.list_events(uow, filters, limit=max_results, after=after)
    return Page[AuditEvent](items=items, next_token=encode_token(listing, last))


@router.post("/audit/verify", summary="Verify the audit trail")
def verify_audit_trail(
    guard: Annotated[
        Guard, Depends(authorize(Action.VERIFY_AUDIT_TRAIL, resources.organization()))
    ],
) -> AuditVerifyReport:
    """200 with ``ok: false`` and the findings when the trail was tampered with."""
    trail = guard.context.audit
    with guard.context.uow() as uow:
        return audit.verify_trail(
            uow,
            trail.public_key,
            now=uow.clock.now(),
            max_digest_age=trail.max_digest_age,
            digest_dir=trail.digest_dir,
        )
