"""Walking ``next_token`` pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from ketch.schemas.common import Page

T = TypeVar("T")


def iterate(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Yield every item of every page, asking ``fetch`` for the next page lazily."""
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page.items
        token = page.next_token
        if token is None:
            return
