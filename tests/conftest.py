"""Shared fixtures: settings under a temporary KETCH_HOME, databases on SQLite and a
throwaway PostgreSQL cluster, the in-process app, and an SDK client bound to it.

``backend`` is parametrised over both databases; store and service tests use it
(through ``database_url``, ``engine`` or ``any_context``) so every rule is proven on both.
PostgreSQL tests are skipped only when the server binaries are missing *and* neither
``KETCH_TEST_POSTGRES=required`` (the test command sets it) nor ``CI`` is set; a cluster
that fails to start is an error.

Migrating a database and bootstrapping it (an argon2 hash of the admin's password) cost
about a second per test, so :class:`DatabaseSnapshots` does each once per session and
every test that needs a migrated or bootstrapped database gets its own copy of it.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, make_url

from ketch.api import create_app
from ketch.core.files import write_private_json
from ketch.core.settings import KetchSettings
from ketch.server.bootstrap import ADMIN_FILE, BootstrapResult, bootstrap
from ketch.server.context import Context, build_context
from ketch.store.engine import create_engine_for_url
from ketch.store.session import UnitOfWorkFactory
from support.postgres import ThrowawayPostgres, require_postgres_binaries
from support.s3_server import s3_server  # noqa: F401  (session fixture)
from support.settings import TEST_HOST, make_settings

Backend = Literal["sqlite", "postgres"]
Stage = Literal["migrated", "bootstrapped"]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[ThrowawayPostgres]:
    require_postgres_binaries()
    cluster = ThrowawayPostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def _postgres_database(cluster: ThrowawayPostgres, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of ``template`` if given), dropped afterwards; yields its URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = cluster.create_database(name, template=template)
    try:
        yield url
    finally:
        cluster.drop_database(name)


@contextmanager
def _open_context(settings: KetchSettings) -> Iterator[Context]:
    """:func:`build_context` (which migrates), closed afterwards."""
    context = build_context(settings)
    try:
        yield context
    finally:
        context.close()


class DatabaseSnapshots:
    """Databases migrated, or migrated and bootstrapped, once per session; copied per test.

    A snapshot is made by the real steps (:func:`build_context`, :func:`bootstrap`); a test
    gets a copy of it (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
    PostgreSQL), so every test still has a database of its own. The admin of a
    bootstrapped snapshot is the same in every copy: :meth:`admin` returns it.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._sqlite: dict[Stage, Path] = {}
        self._templates: dict[Stage, str] = {}
        self._admins: dict[Backend, BootstrapResult] = {}
        self.auth = make_settings(folder, "").auth
        """The settings bootstrap used (the admin token's lifetime)."""

    def sqlite(self, stage: Stage, path: Path) -> str:
        """Copy the SQLite snapshot of ``stage`` to ``path``; returns the copy's URL."""
        if stage not in self._sqlite:
            made = self._folder / f"sqlite-{stage}-made.db"
            self._make("sqlite", stage, f"sqlite:///{made}")
            snapshot = self._folder / f"sqlite-{stage}.db"
            # The backup folds the write-ahead log into one self-contained file.
            with (
                closing(sqlite3.connect(made)) as source,
                closing(sqlite3.connect(snapshot)) as target,
            ):
                source.backup(target)
            self._sqlite[stage] = snapshot
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._sqlite[stage], path)
        return f"sqlite:///{path}"

    def postgres_template(self, cluster: ThrowawayPostgres, stage: Stage) -> str:
        """The name of the PostgreSQL template database of ``stage`` on ``cluster``."""
        if stage not in self._templates:
            name = f"snapshot_{stage}"
            self._make("postgres", stage, cluster.create_database(name))
            self._templates[stage] = name
        return self._templates[stage]

    def admin(self, backend: Backend, home: Path) -> BootstrapResult:
        """The first admin of the bootstrapped snapshot, its file written to ``home``."""
        made = self._admins[backend]
        path = home / ADMIN_FILE
        write_private_json(
            path,
            {
                "organization": made.organization,
                "username": made.username,
                "password": made.password,
                "token": made.token,
            },
        )
        return dataclasses.replace(made, credentials_file=path)

    def _make(self, backend: Backend, stage: Stage, url: str) -> None:
        with _open_context(make_settings(self._folder / f"{backend}-{stage}", url)) as context:
            if stage == "bootstrapped":
                result = bootstrap(context)
                assert result is not None
                self._admins[backend] = result


@pytest.fixture(scope="session")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> DatabaseSnapshots:
    return DatabaseSnapshots(tmp_path_factory.mktemp("snapshots"))


def _stage(request: pytest.FixtureRequest, bootstrapped_by: str) -> Stage:
    """Bootstrapped already when the test also uses the fixture that would bootstrap it."""
    return "bootstrapped" if bootstrapped_by in request.fixturenames else "migrated"


@pytest.fixture
def postgres_url(postgres_cluster: ThrowawayPostgres) -> Iterator[str]:
    with _postgres_database(postgres_cluster) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ketch.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each database in turn: ``"sqlite"``, then ``"postgres"``."""
    name: Backend = request.param
    return name


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: Backend) -> str:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{backend}_url")
    return url


@pytest.fixture
def make_engine() -> Iterator[Callable[..., Engine]]:
    """``make_engine(url, **options)``: :func:`create_engine_for_url`, disposed afterwards."""
    engines: list[Engine] = []

    def make(url: str, **options: Any) -> Engine:
        engine = create_engine_for_url(url, **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def engine(database_url: str, make_engine: Callable[..., Engine]) -> Engine:
    """An engine on the empty database of :func:`database_url` (nothing migrated)."""
    return make_engine(database_url)


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> KetchSettings:
    return make_settings(tmp_path / "home", sqlite_url)


@pytest.fixture
def sqlite_snapshot(
    request: pytest.FixtureRequest, settings: KetchSettings, snapshots: DatabaseSnapshots
) -> BootstrapResult | None:
    """Puts a snapshot where :func:`settings` keeps its SQLite database, for :func:`context`.

    The bootstrapped snapshot when the test uses :func:`bootstrapped` (returns its admin),
    else the migrated one (returns None). Nothing is copied for settings that would make
    a different database: another URL, an existing file, another token lifetime.
    """
    url = make_url(settings.resolved_database_url())
    path = Path(url.database or "")
    if url.get_backend_name() != "sqlite" or not path.name or path.exists():
        return None
    if _stage(request, "bootstrapped") == "migrated" or settings.auth != snapshots.auth:
        snapshots.sqlite("migrated", path)
        return None
    snapshots.sqlite("bootstrapped", path)
    return snapshots.admin("sqlite", settings.home)


@pytest.fixture
def context(settings: KetchSettings, sqlite_snapshot: BootstrapResult | None) -> Iterator[Context]:
    """A migrated SQLite-backed context (API-level tests), from :func:`sqlite_snapshot`."""
    with _open_context(settings) as ctx:
        yield ctx


@pytest.fixture
def any_context(
    request: pytest.FixtureRequest, tmp_path: Path, backend: Backend, snapshots: DatabaseSnapshots
) -> Iterator[Context]:
    """A migrated context on each database in turn (store and service tests).

    Copied from a snapshot, bootstrapped already when the test uses :func:`uow`.
    """
    stage = _stage(request, "uow")
    home = tmp_path / "home"
    if backend == "sqlite":
        url = snapshots.sqlite(stage, tmp_path / "ketch.db")
        with _open_context(make_settings(home, url)) as ctx:
            yield ctx
        return
    cluster: ThrowawayPostgres = request.getfixturevalue("postgres_cluster")
    template = snapshots.postgres_template(cluster, stage)
    with (
        _postgres_database(cluster, template) as url,
        _open_context(make_settings(home, url)) as ctx,
    ):
        yield ctx


@pytest.fixture
def uow(any_context: Context) -> UnitOfWorkFactory:
    """The unit-of-work factory of :func:`any_context` (bootstrapped org)."""
    bootstrap(any_context)  # a no-op on a copy of the bootstrapped snapshot
    return any_context.uow


@pytest.fixture
def bootstrapped(context: Context, sqlite_snapshot: BootstrapResult | None) -> BootstrapResult:
    """The organisation and first admin of :func:`context`."""
    result = sqlite_snapshot or bootstrap(context)
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


@pytest.fixture
def client_from(app: FastAPI, admin_token: str) -> Iterator[Callable[[str], Any]]:
    """``client_from("10.8.0.1")``: the admin's SDK client, its requests coming from there.

    The plain :func:`client` has no IP address (Starlette's ``testclient``), which no
    network allow-list can contain.
    """
    from ketch import Client

    with ExitStack() as stack:

        def make(address: str) -> Client:
            http = stack.enter_context(
                TestClient(
                    app,
                    base_url=f"http://{TEST_HOST}",
                    raise_server_exceptions=False,
                    client=(address, 50000),
                )
            )
            return Client(url=f"http://{TEST_HOST}", token=admin_token, http_client=http)

        yield make


@pytest.fixture
def ketch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh KETCH_HOME and no KETCH_URL/KETCH_TOKEN: no test reads the real ``~/.ketch``.

    Autouse for the SDK and CLI tests (their conftests request it).
    """
    home = tmp_path / "client-home"
    monkeypatch.setenv("KETCH_HOME", str(home))
    monkeypatch.delenv("KETCH_URL", raising=False)
    monkeypatch.delenv("KETCH_TOKEN", raising=False)
    return home
