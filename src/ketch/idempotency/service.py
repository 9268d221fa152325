"""Idempotent creates: remember which client token made which resource.

The record is written in the same transaction as the resource, so a crash can
never leave one without the other.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select

from ketch.core.errors import Conflict
from ketch.core.ids import new_id
from ketch.idempotency.tables import ClientTokenRow
from ketch.store.session import UnitOfWork


def fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of a request body, without its ``client_token``."""
    canonical = {k: v for k, v in body.items() if k != "client_token"}
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def recall(
    uow: UnitOfWork, *, principal_id: str, operation: str, token: str, request_hash: str
) -> str | None:
    """The resource id an earlier identical request created, or ``None`` if this is new.

    The same token with a different body is a :class:`Conflict`.
    """
    row = uow.session.scalars(
        select(ClientTokenRow).where(
            ClientTokenRow.principal_id == principal_id,
            ClientTokenRow.operation == operation,
            ClientTokenRow.token == token,
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise Conflict(
            f"client_token '{token}' was already used for a different {operation} request; "
            "use a new token for a different request"
        )
    return row.resource_id


def remember(
    uow: UnitOfWork,
    *,
    principal_id: str,
    operation: str,
    token: str,
    request_hash: str,
    resource_id: str,
) -> None:
    """Record that ``token`` created ``resource_id``.

    A token this principal already used for ``operation`` (a concurrent retry that lost
    the race) is a :class:`Conflict`; the caller's unit of work must then roll back.
    """
    uow.session.add(
        ClientTokenRow(
            id=new_id(),
            principal_id=principal_id,
            operation=operation,
            token=token,
            request_hash=request_hash,
            resource_id=resource_id,
            created_at=uow.clock.now(),
        )
    )
    uow.flush_or_conflict(
        f"client_token '{token}' was already used for a {operation} request; "
        "retry to get its result, or use a new token for a different request"
    )
