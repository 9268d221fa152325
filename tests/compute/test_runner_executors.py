"""The executors' acceptance test: an unmodified SageMaker-style scikit-learn training
script (the demo's) trains and its model.tar.gz is uploaded, on every executor.

Real job rows, the real runner and artifact store, and each executor in turn: local
processes, and the session's local Ray head (``tests/support/ray_cluster.py``).
"""

from __future__ import annotations

import io
import random
import tarfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import joblib
import pytest

from ketch import compute, org
from ketch.artifact_store import open_artifact, put_artifact
from ketch.compute.executors import Executor
from ketch.compute.executors.local import LocalExecutor
from ketch.compute.queue import Capacity
from ketch.compute.runner import JobRunner
from ketch.compute.tables import JobRow
from ketch.core.artifact_uri import parse_uri
from ketch.demo import TRAIN_SCRIPT
from ketch.schemas.jobs import JobKind, JobStatus, TrainingJobCreate
from ketch.schemas.org import AccountCreate, Stage
from ketch.server.bootstrap import BootstrapResult
from ketch.server.context import Context
from support.bundles import source_bundle

ACCOUNT = "ml-dev"


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Executor]:
    if request.param == "local":
        yield LocalExecutor(tmp_path / "state", timeout_grace_seconds=1)
        return
    cluster = request.getfixturevalue("ray_cluster")
    namespace = cluster.new_namespace()
    yield cluster.executor(namespace, timeout_grace_seconds=1)
    cluster.clean_up(namespace)


def churn_csv(rows: int = 200) -> bytes:
    """Customers who leave early and spend little, as the demo's data set has them."""
    pick = random.Random(7)
    lines = ["tenure_months,monthly_spend,churned"]
    for _ in range(rows):
        tenure, spend = pick.randint(1, 72), round(pick.uniform(10, 120), 2)
        lines.append(f"{tenure},{spend},{int(tenure < 12 and spend < 60)}")
    return ("\n".join(lines) + "\n").encode()


def test_an_unmodified_scikit_learn_script_trains_to_a_model_tarball(
    context: Context, bootstrapped: BootstrapResult, executor: Executor, tmp_path: Path
) -> None:
    with context.uow(write=True) as w:
        org.create_account(w, AccountCreate(id=ACCOUNT, stage=Stage.DEV))
    put_artifact(context.artifacts, ACCOUNT, "data/churn/train.csv", [churn_csv()])
    put_artifact(
        context.artifacts,
        ACCOUNT,
        "code/sourcedir.tar.gz",
        [source_bundle({"train.py": TRAIN_SCRIPT})],
    )
    spec = TrainingJobCreate.model_validate(
        {
            "name": "churn-logreg",
            "code": {
                "source_uri": f"ketch://{ACCOUNT}/code/sourcedir.tar.gz",
                "entry_point": "train.py",
            },
            "inputs": {"train": f"ketch://{ACCOUNT}/data/churn/train.csv"},
            "output_uri": f"ketch://{ACCOUNT}/models/",
            "hyperparameters": {"regularization": 0.5, "max-iter": 200},
            "max_runtime_seconds": 120,
        }
    )
    with context.uow(write=True) as w:
        job_id = compute.submit_job(w, ACCOUNT, JobKind.TRAINING, spec, created_by="tester").id
    runner = JobRunner(
        context,
        executor,
        owner="ctl-1",
        capacity=Capacity(),
        lease=timedelta(seconds=30),
        work_dir=tmp_path / "work",
        poll_seconds=0.1,
        stop_grace_seconds=1,
    )
    try:
        assert runner.run_once()
        done = _wait_until_ended(context, job_id)
    finally:
        runner.close(timeout=10)
    assert done.status == JobStatus.COMPLETED, done.failure_reason
    assert done.executor == executor.name
    assert done.model_artifact_uri is not None
    assert done.model_artifact_uri.endswith("/output/model.tar.gz")
    parsed = parse_uri(done.model_artifact_uri)
    _, chunks = open_artifact(context.artifacts, parsed.account, parsed.key)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as archive:
        member = archive.extractfile("model.joblib")
        assert member is not None
        model = joblib.load(io.BytesIO(member.read()))  # the model this test just trained
    assert list(model.predict([[2, 20.0], [60, 110.0]])) == [1, 0]


def _wait_until_ended(context: Context, job_id: str, timeout: float = 120) -> JobRow:
    deadline = time.monotonic() + timeout
    while True:
        with context.uow() as r:
            row = r.session.get(JobRow, job_id)
            assert row is not None
            r.session.expunge(row)
        if row.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED):
            return row
        assert time.monotonic() < deadline, f"job stayed {row.status}: {row.failure_reason}"
        time.sleep(0.1)
