"""What only :class:`LocalExecutor` promises: private launch files deleted once read, a
plain JSON handle, a reused pid never taken for the supervisor, one folder per attempt id,
and a start that died half-way found as lost (the shared contract is in
``test_conformance.py``)."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from ketch.compute.executors import AttemptExists, AttemptState, Launch
from ketch.compute.executors.local import LocalExecutor
from ketch.core.instances import INSTANCE_TYPES


@pytest.fixture(params=[True, False], ids=["warm", "cold"])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> LocalExecutor:
    """Supervisors forked by the zygote, and started on their own (the fallback)."""
    return LocalExecutor(tmp_path / "state", timeout_grace_seconds=1, warm_start=request.param)


def launch(tmp_path: Path, code: str = "pass") -> Launch:
    return Launch(
        attempt_id="job/1 ../x",
        argv=(sys.executable, "-c", code),
        env={"SECRET": "s3cr3t"},
        cwd=tmp_path,
        log_path=tmp_path / "job.log",
        instance=INSTANCE_TYPES["cpu.small"],
        max_runtime_seconds=60,
    )


def test_the_launch_description_is_private_and_gone_once_read(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    code = "import os; print(os.environ['SECRET'] == 's3cr3t')"
    handle = executor.start(launch(tmp_path, code))
    folder = Path(json.loads(handle)["folder"])
    assert executor.wait(handle, timeout=10).state is AttemptState.SUCCEEDED
    assert "True" in (tmp_path / "job.log").read_text(), "the job saw its environment"
    assert folder.parent == tmp_path / "state", "the attempt id must not escape state_dir"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not (folder / "launch.json").exists()
    for path in folder.iterdir():
        assert b"s3cr3t" not in path.read_bytes(), f"{path.name} keeps the job's secret"


def test_the_handle_survives_a_json_round_trip(executor: LocalExecutor, tmp_path: Path) -> None:
    handle = executor.start(launch(tmp_path))
    data = json.loads(handle)
    assert set(data) == {"pid", "start_time", "folder"}
    stored = json.dumps(json.loads(handle), indent=4, sort_keys=True)  # as a database might
    assert executor.wait(stored, timeout=10).state is AttemptState.SUCCEEDED
    assert LocalExecutor(tmp_path / "state").status(stored).state is AttemptState.SUCCEEDED


def test_a_reused_pid_is_lost_not_running(executor: LocalExecutor, tmp_path: Path) -> None:
    folder = tmp_path / "state" / "ghost"
    folder.mkdir(parents=True)
    own_start = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
    fake = json.dumps({"pid": os.getpid(), "start_time": own_start - 1, "folder": str(folder)})
    status = executor.status(fake)
    assert status.state is AttemptState.LOST
    assert executor.wait(fake, timeout=1).state is AttemptState.LOST
    executor.stop(fake, grace_seconds=0)  # must not signal this test process


def test_a_live_pid_with_the_right_start_time_is_running(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    folder = tmp_path / "state" / "self"
    folder.mkdir(parents=True)
    own_start = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
    handle = json.dumps({"pid": os.getpid(), "start_time": own_start, "folder": str(folder)})
    assert executor.status(handle).state is AttemptState.RUNNING


def test_a_command_that_cannot_start_fails_with_the_reason(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    broken = dataclasses.replace(launch(tmp_path), argv=("/nonexistent/train",))
    status = executor.wait(executor.start(broken), timeout=10)
    assert (status.state, status.exit_code) == (AttemptState.FAILED, 127)
    assert status.reason is not None and "/nonexistent/train" in status.reason
    assert "/nonexistent/train" in (tmp_path / "job.log").read_text()


def test_a_malformed_handle_is_rejected(executor: LocalExecutor) -> None:
    with pytest.raises(ValueError, match="not a local executor handle"):
        executor.status('{"pid": "x"}')


def test_each_attempt_id_has_its_own_folder(executor: LocalExecutor) -> None:
    alike = ["job/1", "job_1", "job 1", "x" * 200, "x" * 201]
    folders = {executor._folder(attempt_id) for attempt_id in alike}
    assert len(folders) == len(alike)
    assert all(folder.parent == executor.state_dir for folder in folders)
    assert executor._folder("job/1") == LocalExecutor(executor.state_dir)._folder("job/1")


def test_a_start_that_died_before_its_supervisor_is_found_lost(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    """The server died between creating the folder and starting the supervisor: the id is
    taken for good, and its attempt is lost (never "not started", which would run it)."""
    attempt = launch(tmp_path)
    folder = executor._folder(attempt.attempt_id)
    folder.mkdir(parents=True)
    (folder / "launch.json").write_text('{"env": {"SECRET": "s3cr3t"}}')
    handle = LocalExecutor(tmp_path / "state").find(attempt.attempt_id)
    assert handle is not None
    status = executor.status(handle)
    assert status.state is AttemptState.LOST
    assert status.reason is not None and "never ran" in status.reason
    assert executor.wait(handle, timeout=1) == status
    assert executor.find(attempt.attempt_id) == handle
    assert not (folder / "launch.json").exists()
    with pytest.raises(AttemptExists):
        executor.start(attempt)
    executor.stop(handle, grace_seconds=0)  # nothing to stop, and no error


def test_find_waits_for_a_start_under_way(executor: LocalExecutor, tmp_path: Path) -> None:
    attempt = launch(tmp_path)
    folder = executor._folder(attempt.attempt_id)
    folder.mkdir(parents=True)
    lock = os.open(folder / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as start() holds it while it starts the supervisor
    found: list[str | None] = []
    finder = threading.Thread(target=lambda: found.append(executor.find(attempt.attempt_id)))
    finder.start()
    finder.join(timeout=0.3)
    assert finder.is_alive(), "find must wait while a start holds the lock"
    handle = json.dumps({"pid": 0, "start_time": 0, "folder": str(folder)})
    (folder / "handle.json").write_text(handle)
    os.close(lock)
    finder.join(timeout=10)
    assert found == [handle]


def test_a_lost_attempt_is_recorded_as_lost(executor: LocalExecutor, tmp_path: Path) -> None:
    folder = tmp_path / "state" / "gone"
    folder.mkdir(parents=True)
    gone = json.dumps({"pid": 2**22 + 1, "start_time": 1, "folder": str(folder)})
    assert executor.status(gone).state is AttemptState.LOST
    recorded = json.loads((folder / "result.json").read_text())
    assert recorded["state"] == "lost"
    assert LocalExecutor(tmp_path / "state").status(gone) == executor.status(gone)
