"""A SageMaker-style training script, unmodified, trained by a real `ketch server`: uploaded
source bundle and data, submitted over HTTP, run by the embedded runner on the local
executor, and its model.tar.gz in the artifact store; its log (secrets masked) and
metrics read back over HTTP."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest

from ketch import Client
from support.bundles import write_source_bundle
from support.live import LiveServer

pytestmark = pytest.mark.live

TRAIN_PY = """\
import argparse, csv, json, os

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--lr", type=float, default=0.1)
args, _ = parser.parse_known_args()

rows = list(csv.DictReader(open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"))))
mean = sum(float(r["amount"]) for r in rows) / len(rows)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as out:
    json.dump({"mean": mean, "epochs": args.epochs, "lr": args.lr}, out)
print(f"trained on {len(rows)} rows: mean={mean}")
print("using token", os.environ["API_TOKEN"])
import ketch
ketch.log_metric("epochs", args.epochs, step=0)
"""


def test_a_sagemaker_script_trains_in_a_real_server(
    live_server: LiveServer, tmp_path: Path
) -> None:
    with Client(url=live_server.url, token=live_server.admin_token()) as admin:
        admin.accounts.create("ml-dev", stage="dev")
        write_source_bundle(tmp_path / "sourcedir.tar.gz", {"train.py": TRAIN_PY})
        (tmp_path / "train.csv").write_text("amount\n1\n2\n3\n")
        admin.artifacts.upload(
            tmp_path / "sourcedir.tar.gz", "ketch://ml-dev/code/sourcedir.tar.gz"
        )
        admin.artifacts.upload(tmp_path / "train.csv", "ketch://ml-dev/data/train.csv")
        spec = {
            "name": "mean-model",
            "code": {
                "source_uri": "ketch://ml-dev/code/sourcedir.tar.gz",
                "entry_point": "train.py",
            },
            "inputs": {"train": "ketch://ml-dev/data/train.csv"},
            "output_uri": "ketch://ml-dev/jobs/",
            "hyperparameters": {"epochs": 3, "lr": 0.05},
            "environment": {"API_TOKEN": "s3cr3t-value"},
            "metric_definitions": [{"name": "mean", "regex": r"mean=([0-9.]+)"}],
        }
        admin.request("POST", "/api/v1/accounts/ml-dev/training-jobs", json=spec)
        live = "".join(admin.training_jobs.logs("ml-dev", "mean-model", follow=True, timeout=60))
        assert "trained on 3 rows" in live  # followed over TCP while the job ran
        deadline = time.monotonic() + 60
        while True:
            job = admin.request("GET", "/api/v1/accounts/ml-dev/training-jobs/mean-model").json()
            if job["status"] in ("Completed", "Failed", "Stopped") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert job["status"] == "Completed", job
        statuses = [t["status"] for t in job["transitions"]]
        assert statuses == [
            "Pending",
            "Starting",
            "Downloading",
            "Training",
            "Uploading",
            "Completed",
        ]
        model_uri = job["model_artifact_uri"]
        admin.artifacts.download(model_uri, tmp_path / "model.tar.gz")
        with tarfile.open(tmp_path / "model.tar.gz") as archive:
            model = archive.extractfile("model.json")
            assert model is not None
            assert model.read() == b'{"mean": 2.0, "epochs": 3, "lr": 0.05}'

        log = "".join(admin.training_jobs.logs("ml-dev", "mean-model"))
        followed = admin.training_jobs.logs("ml-dev", "mean-model", follow=True, timeout=30)
        assert "".join(followed) == log and followed.complete
        assert log == "--- attempt 1 ---\ntrained on 3 rows: mean=2.0\nusing token ***\n"
        series = admin.training_jobs.metrics("ml-dev", "mean-model").series
        assert [p.value for p in series["mean"]] == [2.0]
        assert [(p.value, p.step) for p in series["epochs"]] == [(3.0, 0)]
