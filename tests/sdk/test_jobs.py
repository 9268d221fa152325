"""``ketch.jobs``: packing a source folder, finding the account, naming, and one-call submit."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import NoResultFound

import ketch
from ketch import compute
from ketch.compute.tables import JobRow
from ketch.core.krn import validate_name
from ketch.schemas.jobs import JobStatus
from ketch.sdk.jobs import account_of, job_name, pack_source_dir
from ketch.server.context import Context


@pytest.fixture
def account(client: ketch.Client) -> str:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    return "fraud-dev"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "train.py").write_text("print('hi')\n")
    (root / "pkg" / "util.py").write_text("X = 1\n")
    (root / "pkg" / "__pycache__" / "util.cpython-312.pyc").write_bytes(b"\x00")
    (root / ".git" / "HEAD").write_text("ref: main\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o775)
    (root / "link.py").symlink_to(root / "train.py")
    return root


def members(bundle: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_bundle_holds_regular_files_only(source: Path, tmp_path: Path) -> None:
    bundle = pack_source_dir(source, tmp_path / "a.tar.gz", entry_point="train.py")

    found = members(bundle)
    assert sorted(found) == ["pkg/util.py", "run.sh", "train.py"]
    assert (found["run.sh"].mode, found["train.py"].mode) == (0o755, 0o644)
    assert {(m.mtime, m.uid, m.uname) for m in found.values()} == {(0, 0, "")}
    with tarfile.open(bundle, "r:gz") as tar:
        extracted = tar.extractfile("train.py")
        assert extracted is not None and extracted.read() == b"print('hi')\n"


def test_the_same_files_give_the_same_bytes(source: Path, tmp_path: Path) -> None:
    first = pack_source_dir(source, tmp_path / "a.tar.gz", entry_point="train.py").read_bytes()
    os.utime(source / "train.py", (1, 1))  # times do not count
    second = pack_source_dir(source, tmp_path / "b.tar.gz", entry_point="train.py").read_bytes()
    (source / "train.py").write_text("print('changed')\n")
    third = pack_source_dir(source, tmp_path / "c.tar.gz", entry_point="train.py").read_bytes()

    assert first == second
    assert third != first


@pytest.mark.parametrize("entry_point", ["train.py", "pkg.util:main", "pkg:main"])
def test_entry_points_that_exist_are_accepted(
    source: Path, tmp_path: Path, entry_point: str
) -> None:
    (source / "pkg" / "__init__.py").write_text("")
    assert pack_source_dir(source, tmp_path / "a.tar.gz", entry_point=entry_point).exists()


@pytest.mark.parametrize("entry_point", ["missing.py", "link.py", "pkg.nope:main"])
def test_a_missing_entry_point_is_refused_first(
    source: Path, tmp_path: Path, entry_point: str
) -> None:
    with pytest.raises(ketch.InvalidInput, match=f"entry point '{re.escape(entry_point)}'"):
        pack_source_dir(source, tmp_path / "a.tar.gz", entry_point=entry_point)
    assert not (tmp_path / "a.tar.gz").exists()


def test_a_source_dir_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ketch.InvalidInput, match="is not a directory"):
        pack_source_dir(tmp_path / "nope", tmp_path / "a.tar.gz", entry_point="train.py")


def test_the_account_comes_from_the_uris() -> None:
    assert account_of("ketch://fraud-dev/a.csv", None, "ketch://fraud-dev/b/") == "fraud-dev"
    with pytest.raises(ketch.InvalidInput, match=r"several accounts \(fraud-dev, fraud-prod\)"):
        account_of("ketch://fraud-dev/a.csv", "ketch://fraud-prod/b.csv")
    with pytest.raises(ketch.InvalidInput, match="pass account="):
        account_of()
    with pytest.raises(ketch.InvalidInput, match="ketch://<account>/<key>"):
        account_of("s3://bucket/a.csv")


def test_generated_names_are_valid() -> None:
    now = datetime(2026, 11, 23, 9, 5, 7, tzinfo=UTC)
    name = job_name("scripts/train.py", now=now)
    assert re.fullmatch(r"train-20261123-090507-[0-9a-f]{4}", name)
    for entry in ("pkg.mod:main", "_x.py", "é" * 80 + ".py", "a" * 100 + ".py"):
        assert validate_name(job_name(entry, now=now)) and len(job_name(entry, now=now)) <= 63
    assert job_name("pkg.mod:main", now=now).startswith("mod-")
    assert job_name("é.py", now=now).startswith("job-")


def test_train_without_waiting_uploads_the_bundle_and_submits(
    client: ketch.Client,
    account: str,
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = ketch.jobs.train(
        entry_point="train.py",
        source_dir=source,
        inputs={"train": "ketch://fraud-dev/data/train.csv"},
        hyperparameters={"epochs": 3, "lr": 0.1, "fast": True},
        environment={"MODE": "test"},
        max_runtime_seconds=600,
        wait=False,
        client=client,
    )

    assert job.status is JobStatus.PENDING and job.account == "fraud-dev"
    assert re.fullmatch(r"train-\d{8}-\d{6}-[0-9a-f]{4}", job.name)
    expected = pack_source_dir(source, tmp_path / "x.tar.gz", entry_point="train.py")
    digest = hashlib.sha256(expected.read_bytes()).hexdigest()
    source_uri = f"ketch://fraud-dev/jobs/sources/{digest}/sourcedir.tar.gz"
    assert job.spec.code.source_uri == source_uri
    assert job.spec.output_uri == "ketch://fraud-dev/jobs/"
    assert job.spec.hyperparameters == {"epochs": 3, "lr": 0.1, "fast": True}
    assert job.spec.max_runtime_seconds == 600
    stored = client.artifacts.describe(source_uri)
    assert stored.size == expected.stat().st_size
    fetched = client.artifacts.download(source_uri, tmp_path / "got.tar.gz")
    assert fetched and (tmp_path / "got.tar.gz").read_bytes() == expected.read_bytes()
    assert f"training job {job.name}: Pending" in capsys.readouterr().err
    assert not client._http.is_closed


def test_process_sends_outputs_and_a_given_name(
    client: ketch.Client,
    http: TestClient,
    account: str,
    source: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bodies: list[dict[str, Any]] = []

    def hook(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/processing-jobs"):
            bodies.append(json.loads(request.read()))

    http.event_hooks["request"].append(hook)
    job = ketch.jobs.process(
        "train.py",
        source,
        outputs={"out": "ketch://fraud-dev/out/"},
        account="fraud-dev",
        name="prep-1",
        wait=False,
        quiet=True,
        client=client,
    )
    http.event_hooks["request"].remove(hook)

    assert (job.kind.value, job.name) == ("processing", "prep-1")
    assert client.processing_jobs.get("fraud-dev", "prep-1").status is JobStatus.PENDING
    assert [b["outputs"] for b in bodies] == [{"out": "ketch://fraud-dev/out/"}]
    assert capsys.readouterr().err == ""


def test_waiting_reports_the_state_and_times_out_clearly(
    client: ketch.Client, account: str, source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ketch.jobs.JobWaitTimeout, match="'w-1' in fraud-dev is still Pending"):
        ketch.jobs.train("train.py", source, account="fraud-dev", name="w-1", timeout=0.3,
                         client=client)  # fmt: skip
    # One line per state: Pending was seen on submit and on every poll, printed once.
    assert capsys.readouterr().err.splitlines() == ["training job w-1: Pending"]

    client.training_jobs.stop("fraud-dev", "w-1")
    final = client.training_jobs.wait("fraud-dev", "w-1", timeout=2)
    assert final.status is JobStatus.STOPPED


def test_a_bad_spec_uploads_nothing(client: ketch.Client, account: str, source: Path) -> None:
    with pytest.raises(ketch.InvalidInput, match=r"instance type 'cpu\.huge' is unknown"):
        ketch.jobs.train("train.py", source, account="fraud-dev", name="bad-1",
                         instance_type="cpu.huge", client=client)  # fmt: skip
    with pytest.raises(ketch.InvalidInput, match=r"entry point 'nope\.py'"):
        ketch.jobs.train("nope.py", source, account="fraud-dev", name="bad-2", client=client)
    assert list(client.artifacts.iter_all("ketch://fraud-dev/jobs/")) == []
    assert client.training_jobs.list("fraud-dev").items == []


def test_importing_ketch_jobs_loads_no_server_code() -> None:
    heavy = ["sqlalchemy", "fastapi", "starlette", "alembic", "uvicorn", "ketch.compute"]
    code = (
        "import sys, ketch\n"
        "ketch.jobs.train\n"
        "from ketch import jobs\n"
        "assert jobs is ketch.jobs\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_bundle_bytes_are_a_valid_gzip_without_a_name(source: Path, tmp_path: Path) -> None:
    data = pack_source_dir(source, tmp_path / "a.tar.gz", entry_point="train.py").read_bytes()
    assert data[:2] == b"\x1f\x8b" and data[3] & 0x08 == 0  # FNAME flag unset
    assert data[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert tar.getnames() == ["pkg/util.py", "run.sh", "train.py"]


def test_train_streams_the_log_to_stderr_while_waiting(
    client: ketch.Client,
    account: str,
    source: Path,
    context: Context,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The test app runs no jobs: a thread plays the runner, writing the log as it goes."""
    settings = context.settings
    roots = compute.roots_dir(settings.resolved_jobs_dir())

    def move(status: str) -> str:
        with context.uow(write=True) as w:
            row = w.session.scalars(select(JobRow).where(JobRow.name == "t-1")).one()
            row.status, row.attempt = status, 1
            return row.id

    def runner() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                job_id = move("Training")
                break
            except NoResultFound:
                time.sleep(0.05)
        path = compute.log_path(roots, job_id, 1)
        path.parent.mkdir(parents=True)
        for text in ("epoch 1 token=s3cr3t-value\n", "epoch 2", " done\n"):
            with path.open("a") as log:
                log.write(text)
            time.sleep(0.3)
        move("Completed")

    thread = threading.Thread(target=runner)
    thread.start()
    job = ketch.jobs.train(
        "train.py",
        source,
        account="fraud-dev",
        name="t-1",
        environment={"TOKEN": "s3cr3t-value"},
        metric_definitions=[{"name": "loss", "regex": r"loss=(\S+)"}],
        timeout=30,
        client=client,
    )
    thread.join()
    assert job.status is JobStatus.COMPLETED
    assert [d.name for d in job.spec.metric_definitions] == ["loss"]
    err = capsys.readouterr().err
    assert err.startswith("training job t-1: Pending\n")
    assert "--- attempt 1 ---\nepoch 1 token=***\nepoch 2 done\n" in err
    assert err.endswith("training job t-1: Completed\n")
    assert "s3cr3t-value" not in err


def test_a_reused_name_never_replaces_the_code_of_the_job_that_has_it(
    client: ketch.Client, account: str, source: Path
) -> None:
    first = ketch.jobs.train(
        entry_point="train.py", source_dir=source, inputs={"train": "ketch://fraud-dev/d.csv"},
        name="once", wait=False, quiet=True, client=client,
    )  # fmt: skip
    (source / "train.py").write_text("print('other code')\n")
    with pytest.raises(ketch.Conflict):
        ketch.jobs.train(
            entry_point="train.py", source_dir=source, inputs={"train": "ketch://fraud-dev/d.csv"},
            name="once", wait=False, quiet=True, client=client,
        )  # fmt: skip
    stored = client.artifacts.describe(first.spec.code.source_uri)
    assert stored.sha256 is not None and stored.sha256 in first.spec.code.source_uri
