"""The acceptance test of leased job attempts: a real ``ketch server`` is killed with SIGKILL
while jobs run, and restarted on the same state.

Seven training jobs go to a server with room for three at once and a 3 s lease: one
("bulky") trains for a second and then spends seconds in ``Uploading`` (a large model),
the others train for several seconds. The server is killed while some train, some wait
and, when the timing allows it, "bulky" uploads. After the restart:

- within one lease period (plus :data:`MARGIN_SECONDS`) every job that was active at the
  kill has been taken over by the new server, which re-attaches to its running attempt
  (or retries one that had not started its code);
- every job completes, with its ``model.tar.gz``;
- no job's code ran twice at once: every run takes a per-job ``flock`` for its whole life
  and creates a per-attempt marker with ``O_EXCL``; a second concurrent run, or a second
  run of one attempt, is recorded in ``runs.log`` and fails the job;
- a job that was training at the kill ran its code exactly once;
- each job's status history is a path through the job's states;
- nothing these jobs started is left running, and no launch file (the job's environment)
  is left on disk.

Everything runs on loopback and under ``tmp_path``; the test ends only processes it
started (the servers, and on failure whatever their jobs left behind), each by its pid.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import tarfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ketch import Client
from ketch.schemas.jobs import Job, JobStatus
from support.bundles import write_source_bundle
from support.live import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]

LEASE_SECONDS = 3
MARGIN_SECONDS = 3.0
"""Allowed beyond one lease between the restarted server being ready and its taking over a
job: the controller's sleep between ticks (up to 1 s), the take-over's own writes and a
loaded 2-core machine."""
CAPACITY = 3
TRAIN_SECONDS = 8
BULK_MIB = 96
"""Random (incompressible) bytes in bulky's model: a couple of seconds of packing."""
TRAINERS = 6
ACCOUNT = "ml-dev"
ACTIVE = {
    JobStatus.STARTING,
    JobStatus.DOWNLOADING,
    JobStatus.TRAINING,
    JobStatus.PROCESSING,
    JobStatus.UPLOADING,
    JobStatus.STOPPING,
}
FINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED}
NEXT: dict[JobStatus, set[JobStatus]] = {
    JobStatus.PENDING: {JobStatus.STARTING},
    JobStatus.STARTING: {JobStatus.DOWNLOADING, JobStatus.PENDING},
    JobStatus.DOWNLOADING: {JobStatus.TRAINING, JobStatus.PENDING},
    JobStatus.TRAINING: {JobStatus.UPLOADING, JobStatus.PENDING},
    JobStatus.UPLOADING: {JobStatus.COMPLETED, JobStatus.PENDING},
}
"""Where each state may go in this test (every job succeeds; a take-over repeats a state)."""

TRAIN_PY = """\
import fcntl, json, os, sys, time

marks = os.environ["MARKS"]
name = os.environ["KETCH_JOB_NAME"]
attempt = os.path.basename(os.path.dirname(os.path.dirname(os.environ["KETCH_JOB_DIR"])))
hps = json.loads(os.environ["SM_HPS"])


def log(event):
    with open(os.path.join(marks, "runs.log"), "a") as runs:
        runs.write(f"{name} {attempt} {os.getpid()} {event} {time.time():.3f}\\n")


try:  # one run per attempt
    fd = os.open(os.path.join(marks, f"{name}.attempt-{attempt}"), os.O_CREAT | os.O_EXCL)
    os.close(fd)
except FileExistsError:
    log("SAME-ATTEMPT-TWICE")
    sys.exit(3)
lock = os.open(os.path.join(marks, f"{name}.lock"), os.O_CREAT | os.O_WRONLY)
try:  # one run of the job at a time, whatever its attempt: held until this process ends
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    log("CONCURRENT")
    sys.exit(4)
log("start")
time.sleep(float(hps["seconds"]))
model = os.environ["SM_MODEL_DIR"]
with open(os.path.join(model, "model.json"), "w") as out:
    json.dump({"name": name}, out)
with open(os.path.join(model, "bulk.bin"), "wb") as bulk:
    for _ in range(int(hps["bulk_mib"])):
        bulk.write(os.urandom(1024 * 1024))
log("end")
"""


def _spec(name: str, marks: Path, *, seconds: float, bulk_mib: int) -> dict[str, object]:
    return {
        "name": name,
        "code": {
            "source_uri": f"ketch://{ACCOUNT}/code/sourcedir.tar.gz",
            "entry_point": "train.py",
        },
        "output_uri": f"ketch://{ACCOUNT}/jobs/",
        "hyperparameters": {"seconds": seconds, "bulk_mib": bulk_mib},
        "environment": {"MARKS": str(marks)},
        "retry_strategy": {"maximum_retry_attempts": 2},
        "max_runtime_seconds": 300,
    }


def _jobs(client: Client) -> dict[str, Job]:
    page = client.training_jobs.list(ACCOUNT, max_results=100)
    return {job.name: job for job in page.items}


def _wait_for(
    client: Client, ready: Callable[[dict[str, Job]], bool], timeout: float, what: str
) -> dict[str, Job]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = _jobs(client)
        if ready(jobs):
            return jobs
        if time.monotonic() > deadline:
            states = {name: job.status.value for name, job in jobs.items()}
            raise AssertionError(f"not {what} after {timeout} s: {states}")
        time.sleep(0.05)


def _good_moment(jobs: dict[str, Job]) -> bool:
    """Some train and some wait; and bulky uploads, unless it is past that already."""
    statuses = [job.status for job in jobs.values()]
    if JobStatus.TRAINING not in statuses or JobStatus.PENDING not in statuses:
        return False
    bulky = jobs["bulky"].status
    return bulky is JobStatus.UPLOADING or bulky in FINAL


def _our_processes(home: Path, spared: set[int]) -> list[int]:
    """Live processes whose command line or working folder lies under ``home``, but for
    ``spared`` and the supervisors' zygote of a spared server (it is the server's helper,
    not a job's: it leaves with the server)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if state in "ZX" or (int(parent) in spared and b"_zygote.py" in cmdline):
            continue
        if str(home).encode() in cmdline or cwd.startswith(str(home)):
            found.append(int(entry))
    return found


def _end_leftovers(home: Path) -> None:
    """SIGKILL what the jobs of our servers left (only when the test failed to prove none)."""
    for pid in _our_processes(home, {os.getpid()}):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _state_at(job: Job, moment: datetime) -> JobStatus:
    return [t.status for t in job.transitions if t.at <= moment][-1]


def _check_history(job: Job) -> None:
    statuses = [t.status for t in job.transitions]
    assert statuses[0] is JobStatus.PENDING, statuses
    assert statuses[-1] is JobStatus.COMPLETED, (statuses, job.failure_reason)
    for before, after in itertools.pairwise(statuses):
        assert after is before or after in NEXT[before], f"{job.name}: {before} -> {after}"
    times = [t.at for t in job.transitions]
    assert times == sorted(times), f"{job.name}: transitions out of order"


def _check_model(client: Client, job: Job, folder: Path) -> None:
    assert job.model_artifact_uri is not None and job.model_artifact_uri.endswith("/model.tar.gz")
    target = folder / f"{job.name}.tar.gz"
    client.artifacts.download(job.model_artifact_uri, target)
    with tarfile.open(target) as archive:
        model = archive.extractfile("model.json")
        assert model is not None and json.loads(model.read()) == {"name": job.name}
    target.unlink()


def _kill_restart_and_check(tmp_path: Path, database_url: str | None) -> None:
    home, marks, downloads = tmp_path / "home", tmp_path / "marks", tmp_path / "downloads"
    for folder in (home, marks, downloads):
        folder.mkdir()
    (home / "ketch.toml").write_text(
        f"[jobs]\nlease_seconds = {LEASE_SECONDS}\nper_account = 10\n"
        f"default_per_instance_type = {CAPACITY}\n"
    )
    server = LiveServer(home=home, database_url=database_url).start()
    restarted: LiveServer | None = None
    try:
        with Client(url=server.url, token=server.admin_token()) as client:
            client.accounts.create(ACCOUNT, stage="dev")
            write_source_bundle(tmp_path / "sourcedir.tar.gz", {"train.py": TRAIN_PY})
            client.artifacts.upload(
                tmp_path / "sourcedir.tar.gz", f"ketch://{ACCOUNT}/code/sourcedir.tar.gz"
            )
            client.training_jobs.create(
                ACCOUNT, _spec("bulky", marks, seconds=1, bulk_mib=BULK_MIB)
            )
            for n in range(TRAINERS):
                spec = _spec(f"trainer-{n}", marks, seconds=TRAIN_SECONDS, bulk_mib=1)
                client.training_jobs.create(ACCOUNT, spec)
            seen = _wait_for(client, _good_moment, 60, "at a moment to kill the server")
        server.kill()
        killed_at = datetime.now(UTC)
        shown = {name: job.status.value for name, job in seen.items()}

        restarted = LiveServer(home=home, database_url=database_url, port=server.port).start()
        ready_at = datetime.now(UTC)
        with Client(url=restarted.url, token=restarted.admin_token()) as client:
            jobs = _wait_for(
                client,
                lambda jobs: all(job.status in FINAL for job in jobs.values()),
                120,
                "all ended",
            )
            runs = (marks / "runs.log").read_text().splitlines()
            twice = [line for line in runs if "TWICE" in line or "CONCURRENT" in line]
            assert not twice, f"a job's code ran twice at once: {twice}"
            for job in jobs.values():
                _check_history(job)
                _check_model(client, job, downloads)

        at_kill = {name: _state_at(job, killed_at) for name, job in jobs.items()}
        assert JobStatus.TRAINING in at_kill.values(), (at_kill, shown)
        assert JobStatus.PENDING in at_kill.values(), (at_kill, shown)
        bound = ready_at + timedelta(seconds=LEASE_SECONDS + MARGIN_SECONDS)
        for name, job in jobs.items():
            starts = [line for line in runs if line.split()[:1] == [name] and " start " in line]
            ends = [line for line in runs if line.split()[:1] == [name] and " end " in line]
            assert len(ends) == 1, (name, runs)
            if at_kill[name] not in ACTIVE:
                continue
            after = [t for t in job.transitions if t.at > killed_at]
            assert after and "taken over" in (after[0].message or ""), (name, after)
            taken = after[0].at
            assert taken <= bound, (
                f"{name} ({at_kill[name]} at the kill) taken over "
                f"{(taken - ready_at).total_seconds():.1f} s after the restart"
            )
            if at_kill[name] in (JobStatus.TRAINING, JobStatus.UPLOADING):
                # Re-attached: the same attempt, its code run once.
                attempt_at_kill = [t for t in job.transitions if t.at <= killed_at]
                assert job.attempt == sum(t.status is JobStatus.STARTING for t in attempt_at_kill)
                assert len(starts) == 1, (name, starts)

        deadline = time.monotonic() + 5
        spared = {os.getpid(), restarted.process.pid if restarted.process else -1}
        while (left := _our_processes(home, spared)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes of these jobs still run: {left}"
        assert not list(home.rglob("launch.json")), "a job's environment stayed on disk"
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
        _end_leftovers(home)


def test_jobs_survive_a_sigkilled_server_on_sqlite(tmp_path: Path) -> None:
    _kill_restart_and_check(tmp_path, None)


@pytest.mark.postgres
def test_jobs_survive_a_sigkilled_server_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    _kill_restart_and_check(tmp_path, postgres_url)
