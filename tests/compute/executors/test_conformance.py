"""The contract of :class:`Executor`, run against every executor.

``local`` is :class:`LocalExecutor` with its state in ``tmp_path``. Another executor joins
by adding its name to ``EXECUTORS`` and a branch to the ``backend`` fixture, which gives
a factory of executor objects sharing one state (a "server restart" is a second object)
and a way to make the executor lose an attempt (for the local one: SIGKILL its supervisor).
Scripts are ``python -c`` programs; they leave marker files in ``tmp_path`` when the test
needs to see what they did.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ketch.compute.executors import (
    AttemptExists,
    AttemptState,
    AttemptStatus,
    Executor,
    Handle,
    Launch,
)
from ketch.compute.executors.local import LocalExecutor
from ketch.core.instances import INSTANCE_TYPES, InstanceType

EXECUTORS = ["local", pytest.param("ray", marks=pytest.mark.ray)]
GRACE = 1.0
"""Grace after a timeout (the executor's setting) and after a stop (passed to ``stop``)."""
SMALL = InstanceType("test.tiny", 0, cpus=1, memory_mib=256)

Factory = Callable[[], Executor]


@dataclass
class Backend:
    """What the suite needs of an executor besides the executor itself."""

    new: Factory
    """A fresh executor object on the same state (a restarted server)."""
    lose: Callable[[Handle], None]
    """Make the executor lose track of a running attempt (its runtime dies)."""
    clean_up: Callable[[], None] = lambda: None
    """End whatever a lost attempt left running."""


@pytest.fixture(params=EXECUTORS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The executor under test (overrides the database ``backend`` of conftest)."""
    if request.param == "ray":  # the session's local Ray head, a namespace per test
        cluster = request.getfixturevalue("ray_cluster")
        namespace = cluster.new_namespace()
        found = Backend(
            new=lambda: cluster.executor(namespace, timeout_grace_seconds=GRACE),
            lose=cluster.lose,
            clean_up=lambda: cluster.clean_up(namespace),
        )
    elif request.param == "local":
        state = tmp_path / "state"
        found = Backend(
            new=lambda: LocalExecutor(state, timeout_grace_seconds=GRACE),
            lose=lambda handle: os.kill(json.loads(handle)["pid"], signal.SIGKILL),
            clean_up=lambda: _kill_orphans(state),
        )
    else:
        raise AssertionError(request.param)
    yield found
    found.clean_up()


@pytest.fixture
def new_executor(backend: Backend) -> Factory:
    return backend.new


@pytest.fixture
def executor(new_executor: Factory) -> Iterator[Executor]:
    """An executor; whatever it still runs after the test is stopped at once."""
    executor = new_executor()
    started: list[Handle] = []
    original = executor.start

    def start(launch: Launch) -> Handle:
        handle = original(launch)
        started.append(handle)
        return handle

    executor.start = start  # type: ignore[method-assign]
    yield executor
    for handle in started:
        executor.stop(handle, grace_seconds=0)
    for handle in started:
        executor.wait(handle, timeout=5)


@pytest.fixture
def run(executor: Executor, tmp_path: Path) -> Callable[..., Handle]:
    """``run(code, *args, **launch fields)``: start ``python -c code args``."""
    counter = iter(range(1000))

    def run(code: str, *args: str, **fields: object) -> Handle:
        values: dict[str, object] = {
            "attempt_id": f"job-{next(counter)}",
            "argv": (sys.executable, "-c", code, *args),
            "env": {"PATH": os.defpath, "MARK": str(tmp_path)},
            "cwd": tmp_path,
            "log_path": tmp_path / "job.log",
            "instance": INSTANCE_TYPES["cpu.small"],
            "max_runtime_seconds": 60,
        }
        values.update(fields)
        return executor.start(Launch(**values))  # type: ignore[arg-type]

    return run


def finished(executor: Executor, handle: Handle, timeout: float = 10) -> AttemptStatus:
    status = executor.wait(handle, timeout=timeout)
    assert status.finished, f"still {status} after {timeout} s"
    return status


def wait_for_file(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in "ZX"


TRAP_TERM = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
open(os.path.join(os.environ["MARK"], "ready"), "w").close()
time.sleep(60)
"""
IGNORE_TERM = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.path.join(os.environ["MARK"], "ready"), "w").close()
time.sleep(60)
"""
SPAWN_GRANDCHILD = """
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
mark = os.path.join(os.environ["MARK"], "grandchild")
open(mark + ".tmp", "w").write(str(child.pid))
os.replace(mark + ".tmp", mark)
if sys.argv[1] == "exit":
    raise SystemExit(0)
time.sleep(60)
"""


# -- how an attempt ends ------------------------------------------------------------------


def test_success_logs_stdout_and_stderr(
    executor: Executor, run: Callable[..., Handle], tmp_path: Path
) -> None:
    status = finished(
        executor, run("import sys; print('out-line'); print('err-line', file=sys.stderr)")
    )
    assert (status.state, status.exit_code) == (AttemptState.SUCCEEDED, 0)
    log = (tmp_path / "job.log").read_text()
    assert "out-line" in log
    assert "err-line" in log


def test_non_zero_exit_fails(executor: Executor, run: Callable[..., Handle]) -> None:
    status = finished(executor, run("raise SystemExit(3)"))
    assert (status.state, status.exit_code) == (AttemptState.FAILED, 3)
    assert status.reason is not None and "3" in status.reason


def test_death_by_signal_fails_naming_it(executor: Executor, run: Callable[..., Handle]) -> None:
    status = finished(executor, run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert status.state is AttemptState.FAILED
    assert status.reason is not None and "SIGKILL" in status.reason


def test_runtime_limit_times_out(executor: Executor, run: Callable[..., Handle]) -> None:
    began = time.monotonic()
    status = finished(executor, run("import time; time.sleep(60)", max_runtime_seconds=1))
    assert status.state is AttemptState.TIMED_OUT
    assert time.monotonic() - began < 1 + GRACE + 2


def test_stop_ends_a_script_that_exits_on_sigterm(
    executor: Executor, run: Callable[..., Handle], tmp_path: Path
) -> None:
    handle = run(TRAP_TERM)
    wait_for_file(tmp_path / "ready")
    executor.stop(handle, grace_seconds=30)
    status = finished(executor, handle, timeout=10)  # well before the 30 s grace
    assert (status.state, status.exit_code) == (AttemptState.STOPPED, 0)


def test_stop_kills_a_script_that_ignores_sigterm_after_the_grace(
    executor: Executor, run: Callable[..., Handle], tmp_path: Path
) -> None:
    handle = run(IGNORE_TERM)
    wait_for_file(tmp_path / "ready")
    began = time.monotonic()
    executor.stop(handle, grace_seconds=GRACE)
    assert time.monotonic() - began < 0.5, "stop must return at once"
    assert executor.status(handle).state is AttemptState.RUNNING
    status = finished(executor, handle)
    assert status.state is AttemptState.STOPPED
    assert GRACE * 0.9 <= time.monotonic() - began < GRACE + 3
    assert status.reason is not None and "SIGKILL" in status.reason


def test_stop_right_after_start_is_not_lost(executor: Executor, run: Callable[..., Handle]) -> None:
    handle = run("import time; time.sleep(60)")
    executor.stop(handle, grace_seconds=GRACE)
    assert finished(executor, handle).state is AttemptState.STOPPED


def test_stopping_a_finished_attempt_does_nothing(
    executor: Executor, run: Callable[..., Handle]
) -> None:
    handle = run("pass")
    finished(executor, handle)
    executor.stop(handle)
    assert executor.status(handle).state is AttemptState.SUCCEEDED


@pytest.mark.parametrize("how", ["stop", "timeout", "exit"])
def test_grandchildren_die_with_the_attempt(
    how: str, executor: Executor, run: Callable[..., Handle], tmp_path: Path
) -> None:
    """Stopped, timed out or simply ended: nothing the attempt started outlives it."""
    handle = run(SPAWN_GRANDCHILD, how, max_runtime_seconds=1 if how == "timeout" else 60)
    grandchild = int(wait_for_file(tmp_path / "grandchild"))
    if how == "stop":
        assert alive(grandchild)
        executor.stop(handle, grace_seconds=GRACE)
    expected = {
        "stop": AttemptState.STOPPED,
        "timeout": AttemptState.TIMED_OUT,
        "exit": AttemptState.SUCCEEDED,
    }
    assert finished(executor, handle).state is expected[how]
    deadline = time.monotonic() + 2
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(grandchild)


# -- what the attempt sees ----------------------------------------------------------------


def test_environment_is_exactly_the_launch_env(
    executor: Executor,
    run: Callable[..., Handle],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KETCH_DATABASE_URL", "postgresql://secret@db/ketch")
    code = "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))"
    env = {"ONLY": "this", "PATH": os.defpath}
    assert finished(executor, run(code, env=env)).state is AttemptState.SUCCEEDED
    seen = json.loads((tmp_path / "env.json").read_text())
    # The interpreter may add LC_CTYPE when it coerces the C locale (PEP 538); nothing else.
    seen.pop("LC_CTYPE", None)
    assert seen == env


def test_argv_is_passed_verbatim(
    executor: Executor, run: Callable[..., Handle], tmp_path: Path
) -> None:
    args = ["with space", 'it\'s "quoted"', "$(touch pwned)", "a; touch pwned2", "*", ""]
    code = "import json, sys; json.dump(sys.argv[1:], open('argv.json', 'w'))"
    assert finished(executor, run(code, *args)).state is AttemptState.SUCCEEDED
    assert json.loads((tmp_path / "argv.json").read_text()) == args
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned2").exists()


def test_cwd_is_honoured(executor: Executor, run: Callable[..., Handle], tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    code = "import os; open(os.path.join(os.environ['MARK'], 'cwd.txt'), 'w').write(os.getcwd())"
    assert finished(executor, run(code, cwd=workdir)).state is AttemptState.SUCCEEDED
    assert (tmp_path / "cwd.txt").read_text() == str(workdir)


def test_memory_beyond_the_instance_fails(
    executor: Executor, run: Callable[..., Handle], tmp_path: Path
) -> None:
    code = "block = bytearray(1024 * 1024 * 1024); print('allocated')"
    status = finished(executor, run(code, instance=SMALL))
    assert status.state is AttemptState.FAILED
    log = (tmp_path / "job.log").read_text()
    assert "MemoryError" in log
    assert "allocated" not in log


# -- after a server restart ---------------------------------------------------------------


def test_a_new_executor_sees_running_then_the_end(
    new_executor: Factory, run: Callable[..., Handle], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    code = f"""
import os, time
while not os.path.exists({str(release)!r}):
    time.sleep(0.01)
raise SystemExit(5)
"""
    handle = run(code)
    restarted = new_executor()
    assert restarted.status(handle).state is AttemptState.RUNNING
    assert restarted.wait(handle, timeout=0.2).state is AttemptState.RUNNING
    release.touch()
    status = finished(restarted, handle)
    assert (status.state, status.exit_code) == (AttemptState.FAILED, 5)
    assert new_executor().status(handle) == status


def test_a_lost_attempt_is_lost(
    executor: Executor, backend: Backend, run: Callable[..., Handle], tmp_path: Path
) -> None:
    handle = run(TRAP_TERM)
    wait_for_file(tmp_path / "ready")
    backend.lose(handle)
    status = finished(executor, handle)
    assert status.state is AttemptState.LOST
    assert status.reason


LEAVE_PIDS = """
import os, subprocess, time
child = subprocess.Popen(["sleep", "60"])
mark = os.path.join(os.environ["MARK"], "pids")
open(mark + ".tmp", "w").write(f"{os.getpid()} {child.pid}")
os.replace(mark + ".tmp", mark)
time.sleep(60)
"""
COUNT_RUNS = """
import os
with open(os.path.join(os.environ["MARK"], "runs"), "a") as runs:
    runs.write("ran\\n")
"""


def test_a_lost_attempt_leaves_nothing_running(
    executor: Executor, backend: Backend, run: Callable[..., Handle], tmp_path: Path
) -> None:
    """Whatever lost the attempt, its code does not run on beside the retry that follows."""
    handle = run(LEAVE_PIDS)
    pids = [int(pid) for pid in wait_for_file(tmp_path / "pids").split()]
    assert all(alive(pid) for pid in pids)
    backend.lose(handle)
    assert finished(executor, handle).state is AttemptState.LOST
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(alive(pid) for pid in pids), "the lost attempt's processes live on"
    assert backend.new().status(handle).state is AttemptState.LOST  # and it stays lost


def test_an_attempt_id_starts_only_once(
    executor: Executor, new_executor: Factory, run: Callable[..., Handle], tmp_path: Path
) -> None:
    handle = run(COUNT_RUNS, attempt_id="job-once")
    with pytest.raises(AttemptExists):
        run(COUNT_RUNS, attempt_id="job-once")
    restarted = new_executor()
    with pytest.raises(AttemptExists):
        restarted.start(
            Launch(
                attempt_id="job-once",
                argv=(sys.executable, "-c", COUNT_RUNS),
                env={"PATH": os.defpath, "MARK": str(tmp_path)},
                cwd=tmp_path,
                log_path=tmp_path / "job.log",
                instance=INSTANCE_TYPES["cpu.small"],
                max_runtime_seconds=60,
            )
        )
    assert finished(executor, handle).state is AttemptState.SUCCEEDED
    with pytest.raises(AttemptExists):  # not even once it has ended
        run(COUNT_RUNS, attempt_id="job-once")
    assert (tmp_path / "runs").read_text() == "ran\n"


def test_find_gives_the_attempt_to_a_new_executor(
    new_executor: Factory, run: Callable[..., Handle], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    code = f"""
import os, time
while not os.path.exists({str(release)!r}):
    time.sleep(0.01)
raise SystemExit(4)
"""
    run(code, attempt_id="job-found")
    restarted = new_executor()
    assert restarted.find("job-never-started") is None
    found = restarted.find("job-found")
    assert found is not None
    assert restarted.status(found).state is AttemptState.RUNNING
    release.touch()
    status = finished(restarted, found)
    assert (status.state, status.exit_code) == (AttemptState.FAILED, 4)
    again = new_executor().find("job-found")
    assert again is not None and new_executor().status(again) == status


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_orphans(state: Path) -> None:
    """The user's process outlives a SIGKILLed supervisor; end it by its group."""
    for running in state.glob("*/running.json"):
        pgid = json.loads(running.read_text())["pgid"]
        if _group_exists(pgid):
            os.killpg(pgid, signal.SIGKILL)
