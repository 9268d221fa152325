"""Opaque ``next_token`` values for cursor pagination.

A token encodes the last key of the previous page and the list it belongs to, so a
token from one list is refused by another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import Query

from ketch.core.errors import InvalidInput
from ketch.schemas.common import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MaxResults = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size (1 to 1000).")]
NextToken = Annotated[
    str | None, Query(max_length=512, description="Token from the previous page.")
]
DEFAULT_MAX_RESULTS = DEFAULT_PAGE_SIZE

T = TypeVar("T")


def encode_token(listing: str, key: str | None) -> str | None:
    """The ``next_token`` for a page ending at ``key`` (``None`` when it was the last page)."""
    if key is None:
        return None
    raw = json.dumps({"l": listing, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(listing: str, token: str | None) -> str | None:
    """The key a ``next_token`` stands for; :class:`InvalidInput` if it is not one of ours."""
    if token is None:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if isinstance(data, dict) and data.get("l") == listing and isinstance(data.get("k"), str):
            return str(data["k"])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise InvalidInput("next_token is not valid for this list; pass the value from the last page")


def page_of(
    listing: str,
    items: Sequence[T],
    key: Callable[[T], str],
    *,
    max_results: int,
    next_token: str | None,
) -> tuple[list[T], str | None]:
    """One page of a list held in memory (small, bounded lists such as permission sets).

    Keys must be unique; returns the page (in key order) and its ``next_token``. The
    items are sorted here, by code point as the token compares: a database's collation
    may order mixed-case names otherwise, and the pages would then skip some.
    """
    after = decode_token(listing, next_token)
    ordered = sorted(items, key=key)
    remaining = [item for item in ordered if after is None or key(item) > after]
    page = remaining[:max_results]
    last = key(page[-1]) if page and len(remaining) > max_results else None
    return page, encode_token(listing, last)
