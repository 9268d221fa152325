"""UnitOfWork: one transaction per request or controller tick.

A unit of work commits when its block ends normally and rolls back on any
exception, so a failed request writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ketch.core.clock import Clock
from ketch.core.errors import Conflict
from ketch.store.engine import WRITE_OPTION


class UnitOfWork:
    """A session plus the clock services use to stamp rows."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    def flush_or_conflict(self, message: str) -> None:
        """Flush; a unique-constraint violation (a duplicate, or another writer that got
        there first) becomes :class:`Conflict` with ``message``.

        The flush runs in a savepoint, so the transaction stays usable after the conflict
        on PostgreSQL too.
        """
        try:
            with self.session.begin_nested():
                self.session.flush()
        except IntegrityError as exc:
            raise Conflict(message) from exc


class UnitOfWorkFactory:
    """Opens units of work on one engine; ``write=True`` takes the write lock up front."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(
            bind=engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @contextmanager
    def __call__(self, *, write: bool = False) -> Iterator[UnitOfWork]:
        maker = self._write if write else self._read
        with maker() as session, session.begin():
            yield UnitOfWork(session, self.clock)
