"""A real `ketch server` with ``jobs.executor = "ray"`` and nothing else configured: it
starts a Ray head of its own (127.0.0.1, a generated token), and the demo's unmodified
scikit-learn script, submitted over HTTP, trains on it to a model.tar.gz.

The head outlives the server by design (attempts on it do too); the test stops it.
"""

from __future__ import annotations

import io
import random
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest

from ketch import Client
from ketch.compute.executors._ray_head import LocalRayHead
from ketch.compute.executors.ray import ray_available
from ketch.demo import TRAIN_SCRIPT
from support.bundles import write_source_bundle
from support.live import LiveServer
from support.required import skip_or_fail

pytestmark = [pytest.mark.live, pytest.mark.ray]


@pytest.fixture
def ray_server(tmp_path: Path) -> Iterator[LiveServer]:
    if not ray_available():
        skip_or_fail("RAY", "ray is missing; install the dev extra (pip install -e '.[dev]')")
    home = tmp_path / "home"
    home.mkdir()
    (home / "ketch.toml").write_text('[jobs]\nexecutor = "ray"\n[jobs.ray]\ncpus = 4\n')
    head = LocalRayHead(home / "jobs" / "ray" / "head")
    server = LiveServer(home=home)
    try:
        yield server.start(timeout=120)
    finally:
        server.stop()
        head.stop()


def test_a_scikit_learn_script_trains_on_the_servers_own_ray_head(
    ray_server: LiveServer, tmp_path: Path
) -> None:
    pick = random.Random(3)
    rows = ["tenure_months,monthly_spend,churned"]
    for _ in range(200):
        tenure, spend = pick.randint(1, 72), round(pick.uniform(10, 120), 2)
        rows.append(f"{tenure},{spend},{int(tenure < 12 and spend < 60)}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    write_source_bundle(tmp_path / "sourcedir.tar.gz", {"train.py": TRAIN_SCRIPT})
    with Client(url=ray_server.url, token=ray_server.admin_token()) as admin:
        admin.accounts.create("ml-dev", stage="dev")
        admin.artifacts.upload(tmp_path / "sourcedir.tar.gz", "ketch://ml-dev/code/src.tar.gz")
        admin.artifacts.upload(tmp_path / "train.csv", "ketch://ml-dev/data/train.csv")
        spec = {
            "name": "churn-on-ray",
            "code": {"source_uri": "ketch://ml-dev/code/src.tar.gz", "entry_point": "train.py"},
            "inputs": {"train": "ketch://ml-dev/data/train.csv"},
            "output_uri": "ketch://ml-dev/jobs/",
            "hyperparameters": {"regularization": 0.5, "max-iter": 200},
        }
        admin.request("POST", "/api/v1/accounts/ml-dev/training-jobs", json=spec)
        deadline = time.monotonic() + 120
        while True:
            job = admin.request("GET", "/api/v1/accounts/ml-dev/training-jobs/churn-on-ray").json()
            if job["status"] in ("Completed", "Failed", "Stopped") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert job["status"] == "Completed", (job, ray_server.log_tail())
        admin.artifacts.download(job["model_artifact_uri"], tmp_path / "model.tar.gz")
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        member = archive.extractfile("model.joblib")
        assert member is not None
        model = joblib.load(io.BytesIO(member.read()))
    assert list(model.predict([[2, 20.0], [60, 110.0]])) == [1, 0]
    address = LocalRayHead(ray_server.home / "jobs" / "ray" / "head").address()
    assert address is not None and address.startswith("127.0.0.1:")
