"""Cached environments for requirements.txt: real venvs and real pip, no network.

Packages come from wheels written by the test itself (a wheel is a zip of a module and
its ``.dist-info``) into a folder that pip reads with ``--no-index --find-links``. A
build takes about half a second: ``venv --without-pip`` plus the server's pip run with
``--python``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ketch.compute._requirements import local_digests, requirement_lines
from ketch.compute.environments import (
    READY_FILE,
    SERVER_PTH,
    EnvironmentBuildError,
    Environments,
)
from ketch.core.errors import InvalidInput
from support.wheels import make_wheel

SCRUBBED = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
FAKE_SERVER_PACKAGE = "iniconfig"
"""A package the server's environment has (pytest needs it); a test pins a fake of it."""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder, "tinypkg", "1.0")
    make_wheel(folder, "tinypkg", "2.0")
    make_wheel(folder, FAKE_SERVER_PACKAGE, "0.0.1")
    return folder


@pytest.fixture
def environments(tmp_path: Path, wheels: Path) -> Environments:
    return Environments(
        tmp_path / "environments",
        python=sys.executable,
        pip_args=["--no-index", "--find-links", str(wheels)],
        poll_seconds=0.05,
    )


@dataclass
class Job:
    """One job's side of :meth:`Environments.python_for`: its code folder and log."""

    code: Path
    env: dict[str, str]
    log: Path
    scope: str = "team-a"
    tick: Callable[[], None] = lambda: None
    builds: list[str] = field(default_factory=list)

    def python(self, environments: Environments) -> str:
        return environments.python_for(
            self.code,
            env=self.env,
            log=self.log,
            tick=self.tick,
            scope=self.scope,
            on_build=lambda: self.builds.append("built"),
        )


@pytest.fixture
def job(tmp_path: Path) -> Callable[..., Job]:
    """``job(requirements, **fields)``: a code folder with that requirements.txt (none for
    ``None``) and the job's scrubbed environment and log."""
    count = 0

    def make(requirements: str | None, **fields: Any) -> Job:
        nonlocal count
        count += 1
        root = tmp_path / f"job-{count}"
        code = root / "code"
        code.mkdir(parents=True)
        if requirements is not None:
            (code / "requirements.txt").write_text(requirements)
        env = {**SCRUBBED, "HOME": str(root / "home")}
        return Job(code, env, root / "logs" / "attempt-1.log", **fields)

    return make


def run(python: str, source: str) -> str:
    done = subprocess.run(
        [python, "-c", source], env=SCRUBBED, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def built(environments: Environments) -> list[Path]:
    return sorted(p for p in environments.root.iterdir() if (p / READY_FILE).exists())


def test_no_requirements_runs_on_the_server_python(
    environments: Environments, job: Callable[..., Job]
) -> None:
    assert job(None).python(environments) == sys.executable
    only_comments = job("# nothing yet\n\n   # really\n")
    assert only_comments.python(environments) == sys.executable
    assert not environments.root.exists()
    assert not only_comments.log.exists()


def test_first_use_builds_and_the_next_reuses_without_pip(
    environments: Environments, job: Callable[..., Job]
) -> None:
    first = job("tinypkg==1.0\n")
    python = first.python(environments)

    assert first.builds == ["built"]
    assert Path(python).parent.parent.parent == environments.root
    assert run(python, "import tinypkg; print(tinypkg.VERSION)") == "1.0"
    log = first.log.read_text()
    assert "[ketch] installing requirements.txt" in log
    assert "Successfully installed tinypkg-1.0" in log
    marker = (Path(python).parent.parent / READY_FILE).stat()

    # The same requirements, written differently: the same key, no pip, not a log line.
    second = job("# pinned\ntinypkg==1.0   # the one we test with\n\n")
    assert second.python(environments) == python
    assert second.builds == []
    assert not second.log.exists()
    again = (Path(python).parent.parent / READY_FILE).stat()
    assert (again.st_ino, again.st_mtime_ns) == (marker.st_ino, marker.st_mtime_ns)


def test_different_requirements_or_accounts_get_different_environments(
    environments: Environments, job: Callable[..., Job]
) -> None:
    one = job("tinypkg==1.0").python(environments)
    two = job("tinypkg==2.0").python(environments)
    other_account = job("tinypkg==1.0", scope="team-b").python(environments)

    assert len({one, two, other_account}) == 3
    assert run(two, "import tinypkg; print(tinypkg.VERSION)") == "2.0"
    assert run(one, "import tinypkg; print(tinypkg.VERSION)") == "1.0"


def test_the_job_imports_ketch_and_the_server_packages_but_its_own_pins_win(
    environments: Environments, job: Callable[..., Job]
) -> None:
    python = job(f"{FAKE_SERVER_PACKAGE}==0.0.1\ntinypkg").python(environments)

    import ketch

    assert run(python, "import ketch; print(ketch.__file__)") == ketch.__file__
    assert run(python, "import pydantic; print('ok')") == "ok"  # a server dependency
    source = (
        f"import importlib.metadata as m, {FAKE_SERVER_PACKAGE} as p; "
        f"print(p.VERSION, m.version({FAKE_SERVER_PACKAGE!r}), p.__file__)"
    )
    version, metadata, where = run(python, source).split()
    assert (version, metadata) == ("0.0.1", "0.0.1")
    assert where.startswith(str(environments.root))
    server = run(sys.executable, f"import {FAKE_SERVER_PACKAGE} as p; print(p.__file__)")
    assert not server.startswith(str(environments.root))  # the server's own is untouched
    assert run(python, "import tinypkg; print(tinypkg.VERSION)") == "2.0"  # the newest


def test_the_server_packages_come_after_the_environments_own(
    environments: Environments, job: Callable[..., Job]
) -> None:
    python = job("tinypkg==1.0").python(environments)
    (pth,) = Path(python).parent.parent.glob(f"lib/python*/site-packages/{SERVER_PTH}")
    paths = run(python, "import sys; print('\\n'.join(sys.path))").splitlines()
    server = [i for i, path in enumerate(paths) if path.startswith(sys.prefix)]
    assert server and min(server) > paths.index(str(pth.parent))


def test_system_site_packages_would_not_reach_the_servers_venv(tmp_path: Path) -> None:
    """Why environments use a .pth: ``--system-site-packages`` adds the base
    interpreter's site-packages, not those of the venv the server (and ketch) run from."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run from a venv")
    venv = tmp_path / "plain"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
        env={},
    )
    probe = "import importlib.util as u; print(u.find_spec('ketch') is None)"
    assert run(str(venv / "bin" / "python"), probe) == "True"


def test_a_failed_install_is_the_users_error_and_leaves_nothing_usable(
    environments: Environments, job: Callable[..., Job]
) -> None:
    failing = job("tinypkg==1.0\nnosuchpkg==3.1\n")
    with pytest.raises(InvalidInput) as caught:
        failing.python(environments)

    message = caught.value.message
    assert message.startswith("pip could not install requirements.txt (exit status 1)")
    assert "No matching distribution found for nosuchpkg==3.1" in message
    assert "nosuchpkg" in failing.log.read_text()
    assert [path for path in environments.root.iterdir() if path.is_dir()] == []
    assert job("tinypkg==1.0").python(environments)  # a fixed file builds
    assert len(built(environments)) == 1


def test_concurrent_jobs_with_the_same_requirements_build_once(
    environments: Environments, job: Callable[..., Job]
) -> None:
    ticks: list[int] = []
    jobs = [job("tinypkg==1.0", tick=lambda: ticks.append(1)) for _ in range(3)]
    start = threading.Barrier(len(jobs))
    results: list[str] = []

    def run_one(one: Job) -> None:
        start.wait()
        results.append(one.python(environments))

    threads = [threading.Thread(target=run_one, args=(one,)) for one in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(len(one.builds) for one in jobs) == 1
    assert len(results) == 3 and len(set(results)) == 1
    assert len(built(environments)) == 1
    assert ticks  # the waiters kept their leases
    waiters = [one for one in jobs if not one.builds]
    for one in waiters:  # they waited for the builder, or came after it
        assert not one.log.exists() or "reusing environment" in one.log.read_text()


def test_a_lost_lease_during_pip_stops_the_build_and_leaves_nothing(
    wheels: Path, tmp_path: Path, job: Callable[..., Job]
) -> None:
    environments = Environments(
        tmp_path / "environments",
        python=sys.executable,
        pip_args=["--no-index", "--find-links", str(wheels)],
        poll_seconds=0.001,
    )

    class LeaseLost(Exception):
        pass

    def lose() -> None:
        raise LeaseLost

    with pytest.raises(LeaseLost):
        job("tinypkg==1.0", tick=lose).python(environments)
    assert [path for path in environments.root.iterdir() if path.is_dir()] == []


def test_an_install_past_the_timeout_is_refused(
    wheels: Path, tmp_path: Path, job: Callable[..., Job]
) -> None:
    environments = Environments(
        tmp_path / "environments",
        python=sys.executable,
        pip_args=["--no-index", "--find-links", str(wheels)],
        timeout_seconds=0.01,
    )
    with pytest.raises(InvalidInput, match=r"took longer than 0\.01 s"):
        job("tinypkg==1.0").python(environments)
    assert [path for path in environments.root.iterdir() if path.is_dir()] == []


def test_an_interrupted_build_is_redone(
    environments: Environments, job: Callable[..., Job]
) -> None:
    python = job("tinypkg==1.0").python(environments)
    folder = Path(python).parent.parent
    (folder / READY_FILE).unlink()  # as if the server died before the marker
    (folder / "half-written").write_text("x")

    again = job("tinypkg==1.0")
    assert again.python(environments) == python
    assert again.builds == ["built"]
    assert not (folder / "half-written").exists()
    assert (folder / READY_FILE).exists()


def test_local_files_named_by_the_requirements_are_part_of_the_key(
    environments: Environments, job: Callable[..., Job], tmp_path: Path
) -> None:
    def bundle(version: str) -> Job:
        """A bundle that ships tinypkg as a wheel, always under the same name."""
        one = job("./wheels/tinypkg-1.0-py3-none-any.whl")
        wheel = make_wheel(tmp_path / f"build-{version}", "tinypkg", version)
        (one.code / "wheels").mkdir()
        (one.code / "wheels" / "tinypkg-1.0-py3-none-any.whl").write_bytes(wheel.read_bytes())
        return one

    first = bundle("1.0").python(environments)
    changed = bundle("1.5").python(environments)

    assert first != changed
    assert run(changed, "import tinypkg; print(tinypkg.VERSION)") == "1.5"
    assert bundle("1.0").python(environments) == first


def test_an_editable_local_install_is_refused(
    environments: Environments, job: Callable[..., Job]
) -> None:
    with pytest.raises(InvalidInput, match="editable install of a local path"):
        job("-e .\n").python(environments)
    assert not environments.root.exists()


def test_a_server_python_without_pip_is_a_platform_error(
    tmp_path: Path, job: Callable[..., Job]
) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, env={})
    environments = Environments(tmp_path / "environments", python=str(bare / "bin" / "python"))
    with pytest.raises(EnvironmentBuildError, match=r"needs pip >= 22\.3"):
        job("tinypkg==1.0").python(environments)


def test_eviction_removes_environments_unused_for_the_ttl(
    environments: Environments, job: Callable[..., Job]
) -> None:
    old = Path(job("tinypkg==1.0").python(environments)).parent.parent
    fresh = Path(job("tinypkg==2.0").python(environments)).parent.parent
    long_ago = time.time() - 31 * 86400
    os.utime(old / READY_FILE, (long_ago, long_ago))

    assert environments.evict() == 1
    assert not old.exists() and not (environments.root / f"{old.name}.lock").exists()
    assert (fresh / READY_FILE).exists()
    assert environments.evict() == 0

    # A reuse renews the mark (once it is an hour old), so a used environment stays.
    os.utime(fresh / READY_FILE, (long_ago, long_ago))
    job("tinypkg==2.0").python(environments)
    assert environments.evict() == 0
    again = job("tinypkg==1.0")
    assert Path(again.python(environments)).parent.parent == old
    assert again.builds == ["built"]


# -- reading requirements.txt (no environments built) --------------------------------------


def test_requirement_lines_are_normalised_as_pip_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_bytes(
        b"\xef\xbb\xbf# comment\r\n"
        b"numpy==1.26   # pinned\r\n"
        b"pandas \\\n  >=2.0\n"
        b"\n"
        b"pkg @ https://example.invalid/pkg.zip#sha256=abc\n"
    )
    assert requirement_lines(path) == [
        "numpy==1.26",
        "pandas >=2.0",
        "pkg @ https://example.invalid/pkg.zip#sha256=abc",
    ]
    assert requirement_lines(tmp_path / "missing.txt") == []
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(InvalidInput, match="must be a regular file"):
        requirement_lines(tmp_path / "folder.txt")


def test_local_paths_are_found_as_pip_finds_them(tmp_path: Path) -> None:
    code = tmp_path / "code"
    for folder in ("pkg", "wheels", "numpy"):
        (code / folder).mkdir(parents=True)
    (code / "pkg" / "setup.py").write_text("x")
    (code / "wheels" / "a-1-py3-none-any.whl").write_text("a")
    (code / "base.txt").write_text("requests\n")
    (code / "tool-1.0.tar.gz").write_text("t")
    outside = tmp_path / "outside.whl"
    outside.write_text("o")
    lines = [
        "numpy",  # a requirement name, although a folder has that name
        "./pkg",
        "-r base.txt",
        "--constraint=base.txt",
        "-f wheels",
        "tool-1.0.tar.gz",
        f"other @ file://{outside}",
        "missing/thing.whl",
    ]
    digests = local_digests(code, lines)
    assert sorted(digests) == [
        "./pkg",
        "base.txt",
        f"file://{outside}",
        "tool-1.0.tar.gz",
        "wheels",
    ]

    before = dict(digests)
    (code / "pkg" / "setup.py").write_text("y")  # same size, new content
    after = local_digests(code, lines)
    assert after["./pkg"] != before["./pkg"]
    assert {k: v for k, v in after.items() if k != "./pkg"} == {
        k: v for k, v in before.items() if k != "./pkg"
    }


@pytest.mark.parametrize("line", ["-e .", "--editable=./pkg", "-e ./pkg"])
def test_editable_local_paths_are_refused(tmp_path: Path, line: str) -> None:
    (tmp_path / "pkg").mkdir()
    with pytest.raises(InvalidInput, match="editable"):
        local_digests(tmp_path, [line])
    assert local_digests(tmp_path, ["-e git+https://example.invalid/repo.git#egg=x"]) == {}
