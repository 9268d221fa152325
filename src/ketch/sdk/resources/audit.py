"""``client.audit``: the audit trail's records and its verification."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ketch.schemas.audit import AuditEvent, AuditEventFilter, AuditOutcome, AuditVerifyReport
from ketch.schemas.common import Page
from ketch.sdk._pagination import iterate
from ketch.sdk._wire import build, choice

if TYPE_CHECKING:
    from ketch.sdk.client import Client

PREFIX = "/api/v1"


class Audit:
    """Every mutating call and every denial, hash-chained and signed by the server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        *,
        account: str | None = None,
        principal: str | None = None,
        action: str | None = None,
        outcome: AuditOutcome | str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        newest_first: bool = False,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[AuditEvent]:
        """One page of records; times must carry a zone and select [start, end)."""
        filters = build(
            AuditEventFilter,
            account=account,
            principal=principal,
            action=action,
            outcome=choice(AuditOutcome, outcome, field="outcome") if outcome else None,
            start_time=start_time,
            end_time=end_time,
            newest_first=newest_first,
        )
        params: dict[str, Any] = filters.model_dump(mode="json", exclude_defaults=True)
        params.update(max_results=max_results, next_token=next_token)
        response = self._client.request("GET", f"{PREFIX}/audit/events", params=params)
        return Page[AuditEvent].model_validate(response.json())

    def iter_all(
        self,
        *,
        account: str | None = None,
        principal: str | None = None,
        action: str | None = None,
        outcome: AuditOutcome | str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        newest_first: bool = False,
        page_size: int | None = None,
    ) -> Iterator[AuditEvent]:
        """Every matching record, fetching ``page_size`` per request."""
        return iterate(
            lambda token: self.list(
                account=account,
                principal=principal,
                action=action,
                outcome=outcome,
                start_time=start_time,
                end_time=end_time,
                newest_first=newest_first,
                max_results=page_size,
                next_token=token,
            )
        )

    def verify(self) -> AuditVerifyReport:
        """Have the server check the whole trail; ``report.ok`` is false on any finding."""
        response = self._client.request("POST", f"{PREFIX}/audit/verify")
        return AuditVerifyReport.model_validate(response.json())
