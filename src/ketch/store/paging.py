"""Keyset pagination helper: fetch one row more than asked to know whether a next page exists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

RowT = TypeVar("RowT")


def fetch_page(
    session: Session,
    query: Select[RowT],
    *,
    limit: int,
    key_of: Callable[[RowT], str],
) -> tuple[Sequence[RowT], str | None]:
    """Run ``query`` (already filtered past the cursor and ordered) for ``limit`` rows.

    Returns the rows and the key of the last one when more rows follow, else ``None``.
    """
    if limit < 1:
        raise ValueError(f"page limit must be at least 1, not {limit}")
    rows = session.scalars(query.limit(limit + 1)).all()
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, key_of(rows[-1])
    return rows, None
