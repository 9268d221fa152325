"""``client.audit``: the audit trail's records and its verification."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ketch.schemas.audit import AuditEvent, AuditEventFilter, AuditOutcome, AuditVerifyReport
from ketch.schemas.common import Page
from ketch.sdk._pagination import iterate
from ketch.sdk._wire import build, choice

if TYPE_CHECKING:
    from ketch.sdk.client import Client

PREFIX = "/api/v1"


class AuditFilters(TypedDict, total=False):
    """Which records :meth:`Audit.list` and :meth:`Audit.iter_all` return.

    Every given filter must match; times must carry a zone and select [start, end).
    """

    account: str | None
    principal: str | None
    action: str | None
    outcome: AuditOutcome | str | None
    start_time: datetime | None
    end_time: datetime | None
    newest_first: bool


class Audit:
    """Every mutating call and every denial, hash-chained and signed by the server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        *,
        max_results: int | None = None,
        next_token: str | None = None,
        **filters: Unpack[AuditFilters],
    ) -> Page[AuditEvent]:
        """One page of records (see :class:`AuditFilters`)."""
        outcome = filters.get("outcome")
        filters["outcome"] = choice(AuditOutcome, outcome, field="outcome") if outcome else None
        checked = build(AuditEventFilter, **filters)
        params: dict[str, Any] = checked.model_dump(mode="json", exclude_defaults=True)
        params.update(max_results=max_results, next_token=next_token)
        response = self._client.request("GET", f"{PREFIX}/audit/events", params=params)
        return Page[AuditEvent].model_validate(response.json())

    def iter_all(
        self, *, page_size: int | None = None, **filters: Unpack[AuditFilters]
    ) -> Iterator[AuditEvent]:
        """Every matching record, fetching ``page_size`` per request."""
        return iterate(lambda token: self.list(max_results=page_size, next_token=token, **filters))

    def verify(self) -> AuditVerifyReport:
        """Have the server check the whole trail; ``report.ok`` is false on any finding."""
        response = self._client.request("POST", f"{PREFIX}/audit/verify")
        return AuditVerifyReport.model_validate(response.json())
