"""What only :class:`LocalExecutor` promises: private launch files, a plain JSON handle,
and a reused pid never taken for the supervisor (the shared contract is in
``test_conformance.py``)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from ketch.compute.executors import AttemptState, Launch
from ketch.compute.executors.local import LocalExecutor
from ketch.core.instances import INSTANCE_TYPES


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path / "state", timeout_grace_seconds=1)


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


def test_the_launch_description_is_private(executor: LocalExecutor, tmp_path: Path) -> None:
    handle = executor.start(launch(tmp_path))
    folder = Path(json.loads(handle)["folder"])
    assert executor.wait(handle, timeout=10).state is AttemptState.SUCCEEDED
    assert folder.parent == tmp_path / "state", "the attempt id must not escape state_dir"
    assert stat.S_IMODE((folder / "launch.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert json.loads((folder / "launch.json").read_text())["env"] == {"SECRET": "s3cr3t"}


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
