"""Units of work: commit on a normal exit, roll everything back on an exception."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, Integer, String, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ketch.store.session import UnitOfWork, UnitOfWorkFactory

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class _Base(DeclarativeBase):
    """A private base: these tables must not join ketch's metadata."""


class Note(_Base):
    __tablename__ = "uow_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(String(40))


class Counter(_Base):
    __tablename__ = "uow_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(Integer)


class Boom(Exception):
    pass


MakeEngine = Callable[..., Engine]


def _with_tables(engine: Engine) -> Engine:
    _Base.metadata.create_all(engine)
    return engine


@pytest.fixture
def uow(engine: Engine) -> UnitOfWorkFactory:
    """Units of work on :func:`engine` (an empty database), holding notes 1 and 2."""
    factory = UnitOfWorkFactory(_with_tables(engine), FixedClock())
    with factory(write=True) as unit:
        unit.session.add_all([Note(id=1, body="one"), Note(id=2, body="two")])
    return factory


def _notes(uow: UnitOfWorkFactory) -> dict[int, str]:
    with uow() as unit:
        return {n.id: n.body for n in unit.session.scalars(select(Note))}


def test_unit_of_work_carries_session_and_clock(uow: UnitOfWorkFactory) -> None:
    with uow() as unit:
        assert isinstance(unit, UnitOfWork)
        assert unit.clock.now() == NOW
        assert unit.session.in_transaction()


@pytest.mark.parametrize("write", [True, False], ids=["write", "read"])
def test_normal_exit_commits(uow: UnitOfWorkFactory, write: bool) -> None:
    with uow(write=write) as unit:
        unit.session.add(Note(id=3, body="three"))
        unit.session.get_one(Note, 1).body = "uno"
        unit.session.delete(unit.session.get_one(Note, 2))
    assert _notes(uow) == {1: "uno", 3: "three"}


def test_exception_rolls_back_everything(uow: UnitOfWorkFactory) -> None:
    error = Boom("stop")
    with pytest.raises(Boom) as caught, uow(write=True) as unit:
        unit.session.add(Note(id=3, body="three"))
        unit.session.flush()  # already sent to the database
        unit.session.get_one(Note, 1).body = "changed"
        unit.session.delete(unit.session.get_one(Note, 2))
        unit.session.flush()
        assert len(unit.session.scalars(select(Note)).all()) == 2
        raise error
    assert caught.value is error  # the original exception, not a wrapper
    assert _notes(uow) == {1: "one", 2: "two"}


def test_failed_statement_rolls_back_earlier_writes(uow: UnitOfWorkFactory) -> None:
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), uow(write=True) as unit:
        unit.session.add(Note(id=3, body="three"))
        unit.session.flush()
        unit.session.add(Note(id=1, body="duplicate"))
        unit.session.flush()
    assert _notes(uow) == {1: "one", 2: "two"}


def test_units_are_isolated_until_commit(uow: UnitOfWorkFactory) -> None:
    with uow(write=True) as writer:
        writer.session.add(Note(id=3, body="three"))
        writer.session.flush()
        assert _notes(uow) == {1: "one", 2: "two"}
    assert _notes(uow) == {1: "one", 2: "two", 3: "three"}


def test_loaded_objects_stay_usable_after_the_unit_ends(uow: UnitOfWorkFactory) -> None:
    with uow(write=True) as unit:
        note = unit.session.get_one(Note, 1)
        note.body = "edited"
    assert note.body == "edited"  # not expired on commit, no reload from a closed session


def test_sqlite_write_units_take_the_lock_up_front(
    sqlite_url: str, make_engine: MakeEngine
) -> None:
    engine = _with_tables(make_engine(sqlite_url, busy_timeout_ms=50))
    uow = UnitOfWorkFactory(engine, FixedClock())
    with uow(write=True) as first:
        # The first statement, a read, begins the transaction and takes the lock...
        assert first.session.get(Note, 1) is None
        # ...so another writer's first statement waits (here 50 ms) and gives up,
        with pytest.raises(OperationalError, match="locked"), uow(write=True) as second:
            second.session.get(Note, 1)
        assert _notes(uow) == {}  # while readers go on.
        first.session.add(Note(id=1, body="one"))
    assert _notes(uow) == {1: "one"}


def test_sqlite_concurrent_writers_wait_instead_of_failing(
    sqlite_url: str, make_engine: MakeEngine
) -> None:
    """Read-modify-write units on many threads: no "database is locked", no lost update."""
    engine = _with_tables(make_engine(sqlite_url, busy_timeout_ms=10_000))
    uow = UnitOfWorkFactory(engine, FixedClock())
    with uow(write=True) as unit:
        unit.session.add(Counter(id=1, value=0))
    threads, rounds = 4, 15
    failures: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(rounds):
                with uow(write=True) as unit:
                    counter = unit.session.get_one(Counter, 1)
                    counter.value += 1
        except BaseException as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert not worker.is_alive(), "a writer is still waiting after 60 s"
    assert failures == []
    with uow() as unit:
        assert unit.session.get_one(Counter, 1).value == threads * rounds
