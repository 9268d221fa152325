"""Looking up the iam service's named rows (users, groups, permission sets, guardrails)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select

from ketch.core.errors import NotFound
from ketch.iam.tables import GroupRow, GuardrailRow, PermissionSetRow, UserRow
from ketch.store.session import UnitOfWork

NamedRow = TypeVar("NamedRow", UserRow, GroupRow, PermissionSetRow, GuardrailRow)


def row_named(uow: UnitOfWork, table: type[NamedRow], name: str, kind: str) -> NamedRow:
    """The row of ``table`` called ``name``; :class:`NotFound` naming the ``kind`` if none."""
    row = uow.session.scalars(select(table).where(table.name == name)).first()
    if row is None:
        raise NotFound(f"{kind} '{name}' does not exist")
    return row
