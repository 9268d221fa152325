"""A throwaway PostgreSQL cluster on loopback, for tests.

``ThrowawayPostgres`` runs ``initdb`` into a fresh temporary directory and starts its own
``postgres`` on ``127.0.0.1`` and a free port, with trust authentication and durability
switched off (fsync, synchronous commit and full-page writes), because a test cluster is
thrown away and speed matters more than crash safety. It never touches a system cluster:
it uses the Debian server binaries in ``/usr/lib/postgresql/<version>/bin`` (installed by
``scripts/ensure_postgres.sh``) and signals only the postmaster it started.

PostgreSQL refuses to run as root, so when the tests run as root, ``initdb`` and
``postgres`` run as the ``postgres`` OS account (the Debian package creates it). The
child switches user itself (``subprocess`` ``user=``/``group=``) rather than going through
``runuser``: that way the pid we hold is the postmaster's own, so stopping it by pid cannot
leave an orphaned server behind a wrapper process.

Usage::

    with ThrowawayPostgres() as cluster:
        cluster.create_database("t1")
        engine = sqlalchemy.create_engine(cluster.url("t1"))
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import psycopg
from psycopg import sql

from support.processes import (
    LOOPBACK,
    ChildProcessHelper,
    free_port,
    spawn,
    stop_process,
    tail,
)
from support.required import skip_or_fail

__all__ = ["PostgresStartError", "ThrowawayPostgres", "require_postgres_binaries"]

PG_ROOT = Path("/usr/lib/postgresql")
OS_ACCOUNT = "postgres"
SUPERUSER = "postgres"

_PORT_ATTEMPTS = 3


def require_postgres_binaries() -> None:
    """Skip, or fail where PostgreSQL is required, unless the server binaries exist."""
    if not ThrowawayPostgres.available():
        skip_or_fail(
            "POSTGRES",
            "PostgreSQL server binaries are missing (scripts/ensure_postgres.sh installs them)",
        )


class PostgresStartError(RuntimeError):
    """The throwaway cluster could not be initialised or did not accept connections."""


def find_bin_dir() -> Path | None:
    """The ``bin`` folder of the newest installed PostgreSQL server, or None."""
    candidates: list[tuple[int, Path]] = []
    for postgres in PG_ROOT.glob("*/bin/postgres"):
        version = postgres.parent.parent.name
        if version.isdigit() and os.access(postgres, os.X_OK):
            candidates.append((int(version), postgres.parent))
    return max(candidates)[1] if candidates else None


def _reachable_by_others(directory: Path) -> bool:
    """True if every folder from ``/`` down to ``directory`` can be traversed by anyone."""
    for folder in [directory.resolve(), *directory.resolve().parents]:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return True


class ThrowawayPostgres(ChildProcessHelper):
    """One private PostgreSQL cluster: ``start()``, use ``url()``, then ``stop()``.

    ``base_dir`` is the parent folder of the cluster's temporary directory (default: the
    system temp folder; as root, ``/tmp`` when the temp folder is not reachable by the
    ``postgres`` account). Not thread-safe; one instance is meant to be shared by a test
    session, with one database per test.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        base_dir: Path | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self._bin_dir = bin_dir
        self._base_dir = base_dir
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._root: Path | None = None
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- discovery -------------------------------------------------------------------

    @classmethod
    def available(cls) -> bool:
        """True if PostgreSQL server binaries are installed (``initdb`` and ``postgres``)."""
        bin_dir = find_bin_dir()
        return bin_dir is not None and (bin_dir / "initdb").exists()

    # -- state -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def port(self) -> int:
        if self._port is None or self._process is None:
            raise RuntimeError("the cluster is not started")
        return self._port

    @property
    def pid(self) -> int:
        """The postmaster's pid (also its process group id: it runs in its own session)."""
        if self._process is None:
            raise RuntimeError("the cluster is not started")
        return self._process.pid

    @property
    def root(self) -> Path:
        """The temporary directory holding ``data/``, ``sock/`` and ``postgres.log``."""
        if self._root is None:
            raise RuntimeError("the cluster is not started")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for ``dbname`` as the superuser."""
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string for ``dbname``, for plain ``psycopg.connect``."""
        return f"host={LOOPBACK} port={self.port} user={SUPERUSER} dbname={dbname}"

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Initialise a fresh cluster and start it; returns once it accepts connections.

        Raises ``PostgresStartError`` (with the tail of the server log) when the binaries
        are missing, ``initdb`` fails, or the server is not ready within
        ``startup_timeout`` seconds. Nothing is left behind on failure.
        """
        if self._process is not None:
            raise RuntimeError("the cluster is already started")
        bin_dir = self._bin_dir or find_bin_dir()
        if bin_dir is None:
            raise PostgresStartError(
                f"no PostgreSQL server binaries under {PG_ROOT}/*/bin; "
                "run scripts/ensure_postgres.sh (apt-get install postgresql)"
            )
        self._root = self._make_root()
        atexit.register(self.stop)
        try:
            self._initdb(bin_dir)
            for attempt in range(_PORT_ATTEMPTS):
                self._port = free_port()
                self._process = self._spawn(bin_dir)
                if self._wait_ready():
                    return self
                # Another process may have taken the free port between our probe and
                # the server's bind: when the server exited for that, retry on a new
                # port; fail on anything else (a server still running is stopped).
                exited = self._process is None
                log = self.log_path.read_text(errors="replace")
                if not exited or attempt + 1 == _PORT_ATTEMPTS or "could not bind" not in log:
                    break
            raise PostgresStartError(
                f"PostgreSQL did not accept connections within {self.startup_timeout:.0f} s; "
                f"last lines of {self.log_path}:\n{tail(self.log_path)}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Shut the server down and delete its directory. Safe to call more than once.

        Sends SIGINT (PostgreSQL's *fast* shutdown, which disconnects clients; SIGTERM
        would wait for every open pool to close) to the postmaster, then SIGKILL to its
        process group after ``stop_timeout`` seconds.
        """
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout=self.stop_timeout, sig=signal.SIGINT)
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        self._port = None

    # -- databases -------------------------------------------------------------------

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally copied from ``template``); returns its URL.

        A template must have no open connections while it is copied.
        """
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        self._admin(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, ending any sessions still connected to it."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    # -- internals -------------------------------------------------------------------

    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _account(self) -> dict[str, Any]:
        """``Popen`` keyword arguments that run a child as the ``postgres`` account."""
        if not self._as_root():
            return {}
        try:
            account = pwd.getpwnam(OS_ACCOUNT)
        except KeyError:
            raise PostgresStartError(
                f"running as root, but there is no {OS_ACCOUNT!r} OS account to run "
                "PostgreSQL as (the Debian postgresql package creates it)"
            ) from None
        return {
            "user": account.pw_uid,
            "group": account.pw_gid,
            "extra_groups": [account.pw_gid],
        }

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self._as_root():
            env["HOME"] = str(self.root)
            env["USER"] = env["LOGNAME"] = OS_ACCOUNT
        return env

    def _make_root(self) -> Path:
        base = self._base_dir
        if base is None and self._as_root():
            default = Path(tempfile.gettempdir())
            base = default if _reachable_by_others(default) else Path("/tmp")
        root = Path(tempfile.mkdtemp(prefix="ketch-pg-", dir=base))
        (root / "sock").mkdir()
        if self._as_root():
            account = pwd.getpwnam(OS_ACCOUNT)
            for path in (root, root / "sock"):
                os.chown(path, account.pw_uid, account.pw_gid)
        return root

    def _initdb(self, bin_dir: Path) -> None:
        argv = [
            str(bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-A", "trust",
            "-U", SUPERUSER,
            "-E", "UTF8",
            "--no-locale",
            "--no-sync",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=self._env(),
                check=False,
                **self._account(),
            )
        if result.returncode != 0:
            raise PostgresStartError(
                f"initdb failed (exit {result.returncode}); "
                f"last lines of {self.log_path}:\n{tail(self.log_path)}"
            )

    def _spawn(self, bin_dir: Path) -> subprocess.Popen[bytes]:
        argv = [
            str(bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self._port),
            "-c", f"listen_addresses={LOOPBACK}",
            "-c", f"unix_socket_directories={self.root / 'sock'}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip
        # Its own session: its backends share one process group, killed as a last resort.
        return spawn(argv, log=self.log_path, cwd=self.root, env=self._env(), **self._account())

    def _wait_ready(self) -> bool:
        """Poll until the server accepts a connection (True) or exits or times out."""
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        return False
