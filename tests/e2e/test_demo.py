"""The README's demo, run against a real server: it must keep working as ketch grows."""

from __future__ import annotations

import pytest

from ketch import Client
from ketch.demo import run_demo
from support.live import LiveServer

pytestmark = pytest.mark.live


def test_the_demo_runs_end_to_end(live_server: LiveServer) -> None:
    with Client(url=live_server.url, token=live_server.admin_token()) as admin:
        run_demo(admin)
        assert {a.id for a in admin.accounts.iter_all()} >= {"fraud-dev", "churn-dev"}
        assert admin.audit.verify().ok
        denied = admin.audit.list(outcome="denied").items
        assert {(e.principal, e.action) for e in denied} >= {
            ("alice", "DescribeAccount"),
            ("alice", "AddGroupMember"),
        }
        stored = {a.key for a in admin.artifacts.iter_all("ketch://fraud-dev/datasets/")}
        assert stored == {"datasets/churn/train.csv", "datasets/churn/test.csv"}
        job = admin.training_jobs.get("fraud-dev", "churn-logreg-1")
        assert job.status.value == "Completed"
        assert job.model_artifact_uri is not None
        assert admin.artifacts.describe(job.model_artifact_uri).size > 0
        accuracy = admin.training_jobs.metrics("fraud-dev", job.name).series["train:accuracy"]
        assert len(accuracy) == 1 and 0 <= accuracy[0].value <= 1
