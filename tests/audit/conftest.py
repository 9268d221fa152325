"""Audit tests run on SQLite and PostgreSQL, with a clock that moves only when told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ketch.server.context import Context, build_context
from support.audit import ManualClock
from support.settings import make_settings


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ctx(tmp_path: Path, database_url: str, clock: ManualClock) -> Iterator[Context]:
    """A migrated context on each database in turn, on the manual clock."""
    context = build_context(make_settings(tmp_path / "home", database_url), clock=clock)
    try:
        yield context
    finally:
        context.close()
