"""The audit trail on the wire: records, list filters and the verification report."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, Field, StrictBool

from ketch.schemas.common import ReadModel, WireModel

DetailValue = str | int | bool | None


class AuditOutcome(StrEnum):
    """How an audited request ended."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


class AuditEvent(ReadModel):
    """One audit record. ``hash`` covers every other field and ``prev_hash``.

    Typed loosely (``outcome`` a string, ``details`` any JSON) so that a tampered row
    can still be listed and looked at, rather than failing the whole page.
    """

    seq: int
    time: datetime
    principal: str | None
    principal_id: str | None
    account: str | None
    action: str
    resource: str | None
    request_id: str | None
    source_ip: str | None
    user_agent: str | None
    outcome: str = Field(description="An AuditOutcome value.")
    error_code: str | None
    policy_ids: list[Any]
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditEventFilter(WireModel):
    """Which records to list; every given field must match. Times are [start, end)."""

    account: str | None = Field(None, max_length=64)
    principal: str | None = Field(None, max_length=128)
    action: str | None = Field(None, max_length=64)
    outcome: AuditOutcome | None = None
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    newest_first: StrictBool = False


class AuditFindingKind(StrEnum):
    """What kind of damage a finding describes."""

    RECORD_CHANGED = "record_changed"
    RECORD_MISSING = "record_missing"
    RECORDS_SWAPPED = "records_swapped"
    RECORD_OUT_OF_ORDER = "record_out_of_order"
    RECORD_INSERTED = "record_inserted"
    CHAIN_BROKEN = "chain_broken"
    NEWEST_RECORDS_DELETED = "newest_records_deleted"
    HEAD_MISMATCH = "head_mismatch"
    DIGEST_MISSING = "digest_missing"
    DIGEST_CHANGED = "digest_changed"
    DIGEST_CHAIN_BROKEN = "digest_chain_broken"
    DIGEST_MISMATCH = "digest_mismatch"
    DIGEST_FILE_MISSING = "digest_file_missing"
    DIGEST_FILE_CHANGED = "digest_file_changed"
    STALE = "stale"
    TRUNCATED = "truncated"


class AuditFinding(ReadModel):
    """One thing verification found wrong, named precisely in ``message``."""

    kind: str = Field(description="An AuditFindingKind value.")
    message: str
    first_seq: int | None = None
    last_seq: int | None = None
    digest_id: int | None = None


class AuditVerifyReport(ReadModel):
    """The result of checking the chain, the digests and their files."""

    ok: bool
    checked_at: datetime
    records_checked: int
    newest_seq: int
    digests_checked: int
    newest_digest_at: datetime | None
    findings: list[AuditFinding]
