"""Shared fixtures: settings under a temporary KETCH_HOME, databases on SQLite and a
throwaway PostgreSQL cluster, the in-process app, and an SDK client bound to it.

``database_url`` is parametrised over both databases; store and service tests use it
so every rule is proven on both. PostgreSQL tests are skipped only when the cluster
cannot start *and* ``KETCH_TEST_POSTGRES`` is not ``required`` (the test command sets it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ketch.api import create_app
from ketch.core.settings import KetchSettings
from ketch.server.bootstrap import BootstrapResult, bootstrap
from ketch.server.context import Context, build_context
from ketch.store.session import UnitOfWorkFactory
from support.postgres import ThrowawayPostgres
from support.settings import TEST_HOST, make_settings


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[ThrowawayPostgres]:
    required = os.environ.get("KETCH_TEST_POSTGRES") == "required" or bool(os.environ.get("CI"))
    if not ThrowawayPostgres.available():
        message = (
            "PostgreSQL server binaries are missing (scripts/ensure_postgres.sh installs them)"
        )
        if required:
            pytest.fail(message)
        pytest.skip(message)
    cluster = ThrowawayPostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: ThrowawayPostgres) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres_cluster.create_database(name)
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ketch.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> KetchSettings:
    return make_settings(tmp_path / "home", sqlite_url)


@pytest.fixture
def context(settings: KetchSettings) -> Iterator[Context]:
    """A migrated SQLite-backed context (API-level tests)."""
    ctx = build_context(settings)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def any_context(tmp_path: Path, database_url: str) -> Iterator[Context]:
    """A migrated context on each database in turn (store and service tests)."""
    ctx = build_context(make_settings(tmp_path / "home", database_url))
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def uow(any_context: Context) -> UnitOfWorkFactory:
    """The unit-of-work factory of :func:`any_context` (bootstrapped org)."""
    bootstrap(any_context)
    return any_context.uow


@pytest.fixture
def bootstrapped(context: Context) -> BootstrapResult:
    result = bootstrap(context)
    assert result is not None
    return result


@pytest.fixture
def admin_token(bootstrapped: BootstrapResult) -> str:
    return bootstrapped.token


@pytest.fixture
def admin_credentials(bootstrapped: BootstrapResult) -> dict[str, str]:
    return {"username": bootstrapped.username, "password": bootstrapped.password}


@pytest.fixture
def app(context: Context) -> FastAPI:
    return create_app(context)


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    """A raw HTTP client on the in-process app (no credentials)."""
    with TestClient(app, base_url=f"http://{TEST_HOST}", raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def auth_headers(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture
def client(http: TestClient, admin_token: str):  # type: ignore[no-untyped-def]
    """The real SDK, signed in as the first admin, talking to the in-process app."""
    from ketch import Client

    sdk = Client(url=f"http://{TEST_HOST}", token=admin_token, http_client=http)
    yield sdk
