"""The hash chain: canonical JSON and the SHA-256 hashes of records and digests.

A record's hash covers every stored field, its sequence number included, plus the
hash of the record before it; a digest's hash covers its signed payload. Canonical
JSON (sorted keys, no spaces, UTF-8) makes the bytes depend only on the values, so
any verifier, in any language, can recompute the chain from an export.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
"""The "previous hash" of record 1 and of digest 1."""

RECORD_FIELDS = (
    "seq",
    "time",
    "principal",
    "principal_id",
    "account",
    "action",
    "resource",
    "request_id",
    "source_ip",
    "user_agent",
    "outcome",
    "error_code",
    "policy_ids",
    "details",
    "prev_hash",
)
"""What a record's hash covers, in the names of the ``audit_events`` columns."""


def canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def canonical_time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds: what both databases store and give back."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(fields: Mapping[str, Any]) -> str:
    """The hash of one record, from its column values (``time`` as a datetime)."""
    payload = {name: fields[name] for name in RECORD_FIELDS}
    payload["time"] = canonical_time(fields["time"])
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
