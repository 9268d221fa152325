"""Idempotent creates on top of the idempotency service.

A create that carries ``client_token`` first looks for an earlier identical request
by the same principal; if found it returns that resource unchanged, otherwise it
creates and records the token in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ketch import idempotency
from ketch.iam import Caller
from ketch.schemas.common import WireModel
from ketch.store.session import UnitOfWork

T = TypeVar("T")


def create_once(
    uow: UnitOfWork,
    caller: Caller,
    *,
    operation: str,
    body: WireModel,
    create: Callable[[], T],
    fetch: Callable[[str], T],
    id_of: Callable[[T], str],
) -> T:
    """Run ``create`` unless ``body.client_token`` already created something."""
    token: str | None = getattr(body, "client_token", None)
    if token is None:
        return create()
    request_hash = idempotency.fingerprint(body.model_dump(mode="json"))
    keys = {"principal_id": caller.user_id, "operation": operation, "token": token}
    existing = idempotency.recall(uow, request_hash=request_hash, **keys)
    if existing is not None:
        return fetch(existing)
    result = create()
    idempotency.remember(uow, request_hash=request_hash, resource_id=id_of(result), **keys)
    return result
