"""fetch_page: at most ``limit`` rows, and the key to continue from only when more follow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ketch.store.paging import fetch_page


class _Base(DeclarativeBase):
    """A private base: this table must not join ketch's metadata."""


class Item(_Base):
    __tablename__ = "paging_items"

    id: Mapped[str] = mapped_column(String(8), primary_key=True)


KEYS = [f"k{i:02d}" for i in range(10)]


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    _Base.metadata.create_all(engine)
    with Session(engine) as session:
        # Inserted out of order: the page order comes from the query.
        session.add_all(Item(id=key) for key in reversed(KEYS))
        session.commit()
        yield session


def _page(session: Session, limit: int, after: str | None = None) -> tuple[list[str], str | None]:
    query = select(Item).order_by(Item.id)
    if after is not None:
        query = query.where(Item.id > after)
    rows, next_key = fetch_page(session, query, limit=limit, key_of=lambda item: item.id)
    return [item.id for item in rows], next_key


def test_first_page_and_its_key(session: Session) -> None:
    assert _page(session, 3) == (["k00", "k01", "k02"], "k02")


def test_walking_the_pages_yields_every_row_once(session: Session) -> None:
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        ids, after = _page(session, 3, after)
        seen += ids
        pages += 1
        if after is None:
            break
    assert seen == KEYS
    assert pages == 4


def test_a_page_that_ends_exactly_at_the_last_row_has_no_key(session: Session) -> None:
    assert _page(session, 10) == (KEYS, None)
    assert _page(session, 2, after="k07") == (["k08", "k09"], None)


def test_a_larger_limit_returns_everything(session: Session) -> None:
    assert _page(session, 1000) == (KEYS, None)


def test_one_row_pages(session: Session) -> None:
    assert _page(session, 1) == (["k00"], "k00")


def test_empty_result(session: Session) -> None:
    assert _page(session, 5, after="k99") == ([], None)


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(session: Session, limit: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _page(session, limit)
