"""The job runner end to end: real job rows, a real LocalExecutor, the local artifact store.

Each test submits a job straight into the database (as the API would, or bypassing its
checks on purpose), lets a runner claim it and waits for the row to reach a final state.
"""

from __future__ import annotations

import io
import math
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ketch import compute, org
from ketch.artifact_store import ArtifactStore, open_artifact, put_artifact
from ketch.compute import queue
from ketch.compute.attempt import Attempt
from ketch.compute.environments import Environments
from ketch.compute.executors import AttemptState, AttemptStatus, Launch
from ketch.compute.executors.local import LocalExecutor
from ketch.compute.queue import Capacity
from ketch.compute.runner import JobRunner, RunnerContext
from ketch.compute.tables import JobRow, JobTransitionRow
from ketch.core.artifact_uri import parse_uri
from ketch.core.errors import BackendUnavailable
from ketch.core.ids import new_id
from ketch.schemas.jobs import JobKind, JobStatus, TrainingJobCreate
from ketch.schemas.org import AccountCreate, Stage
from ketch.server.bootstrap import BootstrapResult
from ketch.server.context import Context
from ketch.store.session import UnitOfWorkFactory
from support.bundles import source_bundle
from support.wheels import make_wheel

ACCOUNT = "team-a"
OTHER = "team-b"
TRAIN_SCRIPT = """\
import argparse, os, time

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--sleep", type=float, default=0)
parser.add_argument("--marker", default="")
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
args, _ = parser.parse_known_args()
with open(os.path.join(args.train, "train.csv")) as data:
    rows = data.read().splitlines()[1:]
time.sleep(args.sleep)
if args.marker:
    with open(args.marker, "a") as marker:
        marker.write("ran\\n")
with open(os.path.join(args.model_dir, "model.txt"), "w") as model:
    model.write(f"epochs={args.epochs} rows={len(rows)}\\n")
"""
FAILING_SCRIPT = """\
import os, sys
with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as failure:
    failure.write("loss diverged at epoch 3")
sys.exit(1)
"""
METRICS_SCRIPT = """\
import os, sys
import ketch

for step in range(3):
    print(f"epoch={step} loss={0.5 / (step + 1)}")
    ketch.log_metric("acc", 0.8 + step / 100, step=step)
print("loss=diverging")  # no number: ignored
ketch.log_metric("grad", float("nan"))
ketch.log_metric("grad", float("inf"))
print("token", os.environ["API_TOKEN"], file=sys.stderr)
print("loss=0.1", end="")  # the last line has no newline; read once the attempt ended
"""
CSV = "x,y\n1,2\n3,4\n5,6\n"


@pytest.fixture
def accounts(context: Context, bootstrapped: BootstrapResult) -> Context:
    with context.uow(write=True) as w:
        for account in (ACCOUNT, OTHER):
            org.create_account(w, AccountCreate(id=account, stage=Stage.DEV))
    put(context, ACCOUNT, "data/train/train.csv", CSV.encode())
    put(context, OTHER, "data/train/train.csv", CSV.encode())
    return context


@pytest.fixture
def make_runner(accounts: Context, tmp_path: Path) -> Iterator[Callable[..., JobRunner]]:
    """``make_runner(lease=..., context=..., prices=...)``: a runner on a LocalExecutor in
    ``tmp_path``."""
    made: list[JobRunner] = []

    def make(
        lease: float = 30.0,
        context: RunnerContext | None = None,
        prices: dict[str, float] | None = None,
        environments: Environments | None = None,
    ) -> JobRunner:
        runner = JobRunner(
            context or accounts,
            LocalExecutor(tmp_path / "state", timeout_grace_seconds=1),
            owner=f"ctl-{len(made) + 1}",
            capacity=Capacity(),
            lease=timedelta(seconds=lease),
            work_dir=tmp_path / "work",
            poll_seconds=0.1,
            stop_grace_seconds=1,
            prices=prices,
            environments=environments,
        )
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close(timeout=10)


def put(context: Context, account: str, key: str, data: bytes) -> None:
    put_artifact(context.artifacts, account, key, [data])


def submit(context: Context, files: dict[str, str], **spec: Any) -> str:
    """Upload ``files`` as the job's bundle and insert a Pending job row for it."""
    name = f"job-{new_id()[:8].lower()}"
    source_key = f"code/{name}/sourcedir.tar.gz"
    put(context, ACCOUNT, source_key, source_bundle(files))
    fields: dict[str, Any] = {
        "name": name,
        "code": {"source_uri": f"ketch://{ACCOUNT}/{source_key}", "entry_point": "train.py"},
        "inputs": {"train": f"ketch://{ACCOUNT}/data/train/"},
        "output_uri": f"ketch://{ACCOUNT}/models/",
        "max_runtime_seconds": 60,
    } | spec
    with context.uow(write=True) as w:
        submitted = compute.submit_job(
            w,
            ACCOUNT,
            JobKind.TRAINING,
            TrainingJobCreate.model_validate(fields),
            created_by="tester",
        )
    return submitted.id


def point_input_elsewhere(context: Context, job_id: str, uri: str) -> None:
    """Change a queued job's input behind the API's back (which refuses such URIs)."""
    with context.uow(write=True) as w:
        row = w.session.get(JobRow, job_id)
        assert row is not None
        row.spec = {**row.spec, "inputs": {"train": uri}}


def job(context: Context, job_id: str) -> JobRow:
    with context.uow() as r:
        row = r.session.get(JobRow, job_id)
        assert row is not None
        r.session.expunge(row)
        return row


def wait_for(context: Context, job_id: str, *statuses: JobStatus, timeout: float = 20) -> JobRow:
    deadline = time.monotonic() + timeout
    while True:
        row = job(context, job_id)
        if row.status in statuses:
            return row
        assert time.monotonic() < deadline, f"job stayed {row.status}: {row.failure_reason}"
        time.sleep(0.05)


def transitions(context: Context, job_id: str) -> list[tuple[str, str | None]]:
    with context.uow() as r:
        found = r.session.execute(
            select(JobTransitionRow.status, JobTransitionRow.message)
            .where(JobTransitionRow.job_id == job_id)
            .order_by(JobTransitionRow.seq)
        )
        return [(status, message) for status, message in found]


def run(runner: JobRunner, context: Context, job_id: str) -> JobRow:
    assert runner.run_once()
    return wait_for(context, job_id, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


def read_member(context: Context, uri: str, member: str) -> str:
    parsed = parse_uri(uri)
    _, chunks = open_artifact(context.artifacts, parsed.account, parsed.key)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as archive:
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read().decode()


def test_an_unmodified_sagemaker_script_trains_and_its_model_is_uploaded(
    accounts: Context, make_runner: Callable[..., JobRunner]
) -> None:
    job_id = submit(accounts, {"train.py": TRAIN_SCRIPT}, hyperparameters={"epochs": 3})
    done = run(make_runner(), accounts, job_id)
    assert done.status == JobStatus.COMPLETED, done.failure_reason
    assert [status for status, _ in transitions(accounts, job_id)] == [
        "Pending",
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert done.model_artifact_uri == f"ketch://{ACCOUNT}/models/{done.name}/output/model.tar.gz"
    assert done.output_artifact_uri == f"ketch://{ACCOUNT}/models/{done.name}/output/output.tar.gz"
    assert read_member(accounts, done.model_artifact_uri, "model.txt") == "epochs=3 rows=3\n"
    assert done.billable_seconds is not None and done.billable_seconds > 0
    assert done.cost is None, "no price sheet, no cost"
    assert done.executor == "local" and done.handle is not None


def test_metrics_come_from_the_log_and_from_log_metric_and_secrets_stay_out(
    accounts: Context, make_runner: Callable[..., JobRunner], tmp_path: Path
) -> None:
    job_id = submit(
        accounts,
        {"train.py": METRICS_SCRIPT},
        inputs={},
        environment={"API_TOKEN": "s3cr3t-value"},
        metric_definitions=[{"name": "loss", "regex": r"loss=(\S+)"}],
    )
    done = run(make_runner(prices={"cpu.small": 3.6}), accounts, job_id)
    assert done.status == JobStatus.COMPLETED, done.failure_reason

    with accounts.uow() as r:
        found = compute.get_job_metrics(r, ACCOUNT, JobKind.TRAINING, done.name).series
    assert [p.value for p in found["loss"]] == [0.5, 0.25, 0.5 / 3, 0.1]
    assert [(p.value, p.step) for p in found["acc"]] == [(0.8 + s / 100, s) for s in range(3)]
    assert math.isnan(found["grad"][0].value) and found["grad"][1].value == math.inf
    assert {p.attempt for points in found.values() for p in points} == {1}
    log = compute.log_path(tmp_path / "work", job_id, 1).read_text()
    assert "token s3cr3t-value" in log, "the file is raw; the API masks what it serves"
    assert done.billable_seconds is not None and done.cost is not None
    assert done.cost == pytest.approx(done.billable_seconds / 1000)  # 3.6 an hour


def test_a_failure_file_and_a_non_zero_exit_fail_the_job_as_the_users(
    accounts: Context, make_runner: Callable[..., JobRunner]
) -> None:
    job_id = submit(accounts, {"train.py": FAILING_SCRIPT})
    done = run(make_runner(), accounts, job_id)
    assert done.status == JobStatus.FAILED
    assert done.failure_kind == "user"
    assert done.failure_reason == "loss diverged at epoch 3"
    assert done.model_artifact_uri is None


def test_a_secret_written_to_the_failure_file_is_masked_in_the_reason(
    accounts: Context, make_runner: Callable[..., JobRunner]
) -> None:
    script = FAILING_SCRIPT.replace('"loss diverged at epoch 3"', 'os.environ["API_TOKEN"]')
    job_id = submit(accounts, {"train.py": script}, environment={"API_TOKEN": "s3cr3t-value"})
    done = run(make_runner(), accounts, job_id)
    assert done.status == JobStatus.FAILED
    assert done.failure_reason == "***"


def test_an_input_in_another_account_is_refused_before_anything_is_downloaded(
    accounts: Context, make_runner: Callable[..., JobRunner], tmp_path: Path
) -> None:
    job_id = submit(accounts, {"train.py": TRAIN_SCRIPT})
    point_input_elsewhere(accounts, job_id, f"ketch://{OTHER}/data/train/")
    done = run(make_runner(), accounts, job_id)
    assert done.status == JobStatus.FAILED and done.failure_kind == "user"
    assert done.failure_reason is not None
    assert f"ketch://{OTHER}/data/train/" in done.failure_reason
    assert "own account" in done.failure_reason
    assert not (tmp_path / "work" / job_id / "1").exists(), "nothing may be laid out or fetched"


def test_a_bundle_climbing_out_with_dot_dot_is_refused_whole(
    accounts: Context, make_runner: Callable[..., JobRunner], tmp_path: Path
) -> None:
    job_id = submit(accounts, {"train.py": TRAIN_SCRIPT, "../evil.py": "print('owned')"})
    done = run(make_runner(), accounts, job_id)
    assert done.status == JobStatus.FAILED and done.failure_kind == "user"
    assert done.failure_reason is not None and done.failure_reason.startswith("unsafe archive")
    code = tmp_path / "work" / job_id / "1" / "opt" / "ml" / "code"
    assert list(code.iterdir()) == []
    assert not list((tmp_path / "work").rglob("evil.py"))


def test_a_stop_request_stops_a_running_job(
    accounts: Context, make_runner: Callable[..., JobRunner]
) -> None:
    job_id = submit(accounts, {"train.py": TRAIN_SCRIPT}, hyperparameters={"sleep": 60})
    assert make_runner().run_once()
    wait_for(accounts, job_id, JobStatus.TRAINING)
    with accounts.uow(write=True) as w:
        row = w.session.get(JobRow, job_id)
        assert row is not None
        row.stop_requested = True
    done = wait_for(accounts, job_id, JobStatus.STOPPED, JobStatus.FAILED, JobStatus.COMPLETED)
    assert done.status == JobStatus.STOPPED, done.failure_reason
    assert "Stopping" in [status for status, _ in transitions(accounts, job_id)]


@dataclass
class OffsetClock:
    """The wall clock moved by ``offset``: a controller that sees every lease expired."""

    offset: timedelta

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class LaterContext:
    uow: UnitOfWorkFactory
    artifacts: ArtifactStore


def test_a_new_runner_recovers_a_running_attempt_without_running_it_again(
    accounts: Context, make_runner: Callable[..., JobRunner], tmp_path: Path
) -> None:
    marker = tmp_path / "ran.txt"
    hps = {"sleep": 2, "marker": str(marker)}
    job_id = submit(accounts, {"train.py": TRAIN_SCRIPT}, hyperparameters=hps)
    first = make_runner(lease=1)
    assert first.run_once()
    wait_for(accounts, job_id, JobStatus.TRAINING)
    # The first controller is abandoned, not closed. Its worker still heartbeats, so the
    # second one sees the lease expired by living later; its take-over bumps the fence,
    # which stops the first worker's writes as a real controller death would.
    later = LaterContext(
        UnitOfWorkFactory(accounts.engine, OffsetClock(timedelta(minutes=10))), accounts.artifacts
    )
    second = make_runner(lease=1, context=later)
    assert second.recover() == 1
    done = wait_for(accounts, job_id, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)
    assert done.status == JobStatus.COMPLETED, done.failure_reason
    assert done.attempt == 1
    assert marker.read_text() == "ran\n", "the script must have run exactly once"
    assert done.model_artifact_uri is not None
    assert read_member(accounts, done.model_artifact_uri, "model.txt") == "epochs=1 rows=3\n"
    statuses = transitions(accounts, job_id)
    assert [s for s, _ in statuses].count("Completed") == 1
    assert [s for s, _ in statuses].count("Starting") == 1
    assert any(m and "taken over by ctl-2" in m for _, m in statuses)
    # The second controller's clock runs 10 minutes ahead. Billing counts from the
    # attempt's first Training (on the first controller's clock), not from the take-over,
    # which recorded Training again: so those 10 minutes are billed too.
    assert done.billable_seconds is not None and done.billable_seconds >= 600


@pytest.mark.parametrize(("max_attempts", "status"), [(2, "Pending"), (1, "Failed")])
def test_an_attempt_that_died_before_it_started_is_retried_or_failed_as_the_platforms(
    accounts: Context, make_runner: Callable[..., JobRunner], max_attempts: int, status: str
) -> None:
    job_id = submit(accounts, {"train.py": TRAIN_SCRIPT})
    with accounts.uow(write=True) as w:
        row = w.session.get(JobRow, job_id)
        assert row is not None
        row.max_attempts = max_attempts
    with accounts.uow(write=True) as w:  # a controller claims it, then dies at once
        claim = queue.claim_next(w, owner="gone", lease=timedelta(seconds=1), capacity=Capacity())
        assert claim is not None
    later = LaterContext(
        UnitOfWorkFactory(accounts.engine, OffsetClock(timedelta(minutes=10))), accounts.artifacts
    )
    assert make_runner(context=later).recover() == 1
    done = wait_for(accounts, job_id, JobStatus.PENDING, JobStatus.FAILED)
    assert done.status == status and done.attempt == 1
    if status == "Failed":
        assert done.failure_kind == "platform"
        assert (
            done.failure_reason is not None and "before the attempt started" in done.failure_reason
        )
    else:
        assert done.handle is None and done.failure_reason is None


class ControllerCrash(BaseException):
    """Not an Exception: escapes the attempt's error handling, as a SIGKILL would."""


def test_a_controller_that_died_between_start_and_record_is_reattached_not_run_twice(
    accounts: Context,
    make_runner: Callable[..., JobRunner],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    job_id = submit(
        accounts,
        {"train.py": TRAIN_SCRIPT},
        hyperparameters={"marker": str(runs), "sleep": 0.5},
    )
    recorded = Attempt._try_advance

    def die_before_recording_the_start(self: Attempt, status: JobStatus, **values: Any) -> bool:
        if status is JobStatus.TRAINING:
            raise ControllerCrash
        return recorded(self, status, **values)

    monkeypatch.setattr(Attempt, "_try_advance", die_before_recording_the_start)
    assert make_runner(lease=1).run_once()
    deadline = time.monotonic() + 20
    while not runs.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job(accounts, job_id).handle is None, "the start was never recorded"
    monkeypatch.undo()

    later = LaterContext(
        UnitOfWorkFactory(accounts.engine, OffsetClock(timedelta(minutes=10))), accounts.artifacts
    )
    assert make_runner(context=later).recover() == 1
    done = wait_for(accounts, job_id, JobStatus.COMPLETED, JobStatus.FAILED)

    assert done.status == JobStatus.COMPLETED, done.failure_reason
    assert done.attempt == 1, "re-attached, not retried"
    assert runs.read_text() == "ran\n", "the code ran once"
    messages = [message or "" for _, message in transitions(accounts, job_id)]
    assert any("re-attached" in message for message in messages)


def test_a_requirements_txt_is_installed_into_a_cached_environment(
    accounts: Context, make_runner: Callable[..., JobRunner], tmp_path: Path
) -> None:
    """A wheel shipped in the bundle, named in its requirements.txt: the job imports it,
    pip's output is in the job's log, and a second job reuses the environment."""
    wheel = make_wheel(tmp_path / "wheels", "tinypkg", "1.5")
    files = {
        "train.py": "import tinypkg, ketch\nprint('tinypkg', tinypkg.VERSION)\n" + TRAIN_SCRIPT,
        "requirements.txt": f"tinypkg @ file://{wheel}\n",
    }
    environments = Environments(
        tmp_path / "environments", python=sys.executable, pip_args=["--no-index"]
    )
    runner = make_runner(environments=environments)
    first = run(runner, accounts, submit(accounts, files))
    assert first.status == JobStatus.COMPLETED, first.failure_reason
    log = (tmp_path / "work" / first.id / "logs" / "attempt-1.log").read_text()
    assert "tinypkg 1.5" in log and "installing requirements.txt" in log
    messages = [message or "" for _, message in transitions(accounts, first.id)]
    assert "installing requirements.txt" in messages

    second = run(runner, accounts, submit(accounts, files))
    assert second.status == JobStatus.COMPLETED, second.failure_reason
    messages = [message or "" for _, message in transitions(accounts, second.id)]
    assert "installing requirements.txt" not in messages, "the environment was reused"
    assert len([p for p in (tmp_path / "environments").iterdir() if p.is_dir()]) == 1


def test_a_requirement_that_cannot_be_installed_fails_the_job_as_the_users(
    accounts: Context, make_runner: Callable[..., JobRunner], tmp_path: Path
) -> None:
    files = {"train.py": TRAIN_SCRIPT, "requirements.txt": "no-such-package-anywhere==1.0\n"}
    environments = Environments(
        tmp_path / "environments", python=sys.executable, pip_args=["--no-index"]
    )
    done = run(make_runner(environments=environments), accounts, submit(accounts, files))
    assert done.status == JobStatus.FAILED and done.failure_kind == "user"
    assert done.failure_reason is not None and "no-such-package-anywhere" in done.failure_reason


class UnreachableAtFirst(LocalExecutor):
    """A local executor whose first few waits fail as an unreachable cluster would."""

    def __init__(self, state_dir: Path, failures: int) -> None:
        super().__init__(state_dir, timeout_grace_seconds=1)
        self.failures = failures

    def wait(self, handle: str, timeout: float | None = None) -> AttemptStatus:
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("the cluster is out of reach")
        return super().wait(handle, timeout)


def test_an_executor_out_of_reach_for_a_while_neither_fails_nor_restarts_the_job(
    accounts: Context, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    job_id = submit(accounts, {"train.py": TRAIN_SCRIPT}, hyperparameters={"marker": str(runs)})
    executor = UnreachableAtFirst(tmp_path / "state", failures=3)
    runner = JobRunner(
        accounts,
        executor,
        owner="ctl",
        capacity=Capacity(),
        lease=timedelta(seconds=30),
        work_dir=tmp_path / "work",
        poll_seconds=0.05,
    )
    try:
        done = run(runner, accounts, job_id)
    finally:
        runner.close(timeout=10)
    assert done.status == JobStatus.COMPLETED, done.failure_reason
    assert done.attempt == 1 and executor.failures == 0
    assert runs.read_text() == "ran\n"


CHECKPOINT_SCRIPT = """\
import os, sys
folder = os.environ["KETCH_CHECKPOINT_DIR"]
path = os.path.join(folder, "state", "epoch.txt")
epoch = int(open(path).read()) if os.path.exists(path) else 0
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as state:
    state.write(str(epoch + 1))
sys.exit(int(os.environ.get("FAIL", "0")))
"""


def test_checkpoints_are_restored_before_the_code_and_saved_after_it_whatever_its_end(
    accounts: Context, make_runner: Callable[..., JobRunner]
) -> None:
    checkpoints = f"ketch://{ACCOUNT}/checkpoints/churn"  # no trailing '/': still a folder
    runner = make_runner()

    failed = run(
        runner,
        accounts,
        submit(
            accounts,
            {"train.py": CHECKPOINT_SCRIPT},
            checkpoint_uri=checkpoints,
            environment={"FAIL": "3"},
        ),
    )
    assert failed.status == JobStatus.FAILED  # its checkpoint is saved all the same
    resumed = run(
        runner,
        accounts,
        submit(accounts, {"train.py": CHECKPOINT_SCRIPT}, checkpoint_uri=checkpoints),
    )
    assert resumed.status == JobStatus.COMPLETED, resumed.failure_reason

    _, chunks = open_artifact(accounts.artifacts, ACCOUNT, "checkpoints/churn/state/epoch.txt")
    assert b"".join(chunks) == b"2", "the second job resumed from the first one's checkpoint"


class StartsThenTimesOut(LocalExecutor):
    """Starts the first attempt, then fails as a start whose answer never came back."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, timeout_grace_seconds=1)
        self.failed_once = False

    def start(self, launch: Launch) -> str:
        handle = super().start(launch)
        if not self.failed_once:
            self.failed_once = True
            raise BackendUnavailable("no answer to the start in 60 s")
        return handle


def test_an_attempt_started_by_a_start_that_failed_is_stopped_before_the_retry(
    accounts: Context, tmp_path: Path
) -> None:
    job_id = submit(
        accounts,
        {"train.py": TRAIN_SCRIPT},
        hyperparameters={"sleep": 1},
        retry_strategy={"maximum_retry_attempts": 1},
    )
    executor = StartsThenTimesOut(tmp_path / "state")
    runner = JobRunner(
        accounts,
        executor,
        owner="ctl",
        capacity=Capacity(),
        lease=timedelta(seconds=30),
        work_dir=tmp_path / "work",
        poll_seconds=0.05,
        max_backoff=timedelta(seconds=0),
    )
    try:
        assert runner.run_once()
        requeued = wait_for(accounts, job_id, JobStatus.PENDING)
        assert requeued.attempt == 1
        first = executor.find(f"{job_id}-1")
        assert first is not None, "the first attempt did start"
        assert executor.wait(first, timeout=10).state is AttemptState.STOPPED
        done = run(runner, accounts, job_id)
    finally:
        runner.close(timeout=10)
    assert done.status == JobStatus.COMPLETED and done.attempt == 2, done.failure_reason
