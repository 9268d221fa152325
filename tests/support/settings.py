"""Settings for tests: an explicit home and database, the test client's host allowed."""

from __future__ import annotations

from pathlib import Path

from ketch.core.settings import KetchSettings

TEST_HOST = "testserver"


def make_settings(home: Path, database_url: str, **overrides: object) -> KetchSettings:
    return KetchSettings(
        home=home,
        database_url=database_url,
        server={"allowed_hosts": ["127.0.0.1", "localhost", TEST_HOST]},
        **overrides,
    )
