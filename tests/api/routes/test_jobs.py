"""The job routes over HTTP: submit, describe, list, stop, with the bad input of the issue."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.envelope import assert_envelope

Headers = dict[str, str]
API = "/api/v1"
JOBS = f"{API}/accounts/fraud-dev/training-jobs"


@pytest.fixture
def account(http: TestClient, auth_headers: Headers) -> str:
    for account, stage in (("fraud-dev", "dev"), ("fraud-prod", "prod"), ("sandbox-1", "sandbox")):
        body = {"id": account, "stage": stage, "ou": "teams/fraud", "create_missing_ous": True}
        response = http.post(f"{API}/accounts", json=body, headers=auth_headers)
        assert response.status_code == 201, response.text
    return "fraud-dev"


def spec(name: str = "churn-1", account: str = "fraud-dev", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "code": {
            "source_uri": f"ketch://{account}/code/sourcedir.tar.gz",
            "entry_point": "train.py",
        },
        "inputs": {"train": f"ketch://{account}/datasets/churn/"},
        "output_uri": f"ketch://{account}/jobs/",
        "hyperparameters": {"epochs": 3, "lr": 0.1},
        "environment": {"API_TOKEN": "s3cr3t-value"},
        "tags": {"team": "fraud"},
    }
    body.update(changes)
    return body


def test_a_job_is_queued_and_described_without_its_secrets(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    created = http.post(JOBS, json=spec(), headers=auth_headers)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "Pending"
    assert job["krn"] == "krn:ketch:fraud-dev:training-job/churn-1"
    assert [t["status"] for t in job["transitions"]] == ["Pending"]
    described = http.get(f"{JOBS}/churn-1", headers=auth_headers)
    assert described.status_code == 200
    assert described.json()["spec"]["environment"] == {"API_TOKEN": "(hidden)"}
    assert "s3cr3t-value" not in described.text
    events = http.get(f"{API}/audit/events", headers=auth_headers).text
    assert "s3cr3t-value" not in events


def test_names_are_unique_per_account_and_kind(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    assert http.post(JOBS, json=spec(), headers=auth_headers).status_code == 201
    assert_envelope(http.post(JOBS, json=spec(), headers=auth_headers), 409, "Conflict")
    processing = f"{API}/accounts/fraud-dev/processing-jobs"
    assert http.post(processing, json=spec(), headers=auth_headers).status_code == 201


def test_an_input_in_another_account_is_refused_at_submission(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    body = spec(inputs={"train": "ketch://fraud-prod/datasets/churn/"})
    error = assert_envelope(http.post(JOBS, json=body, headers=auth_headers), 403, "AccessDenied")
    assert "another account" in error["message"]
    assert http.get(JOBS, headers=auth_headers).json()["items"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"instance_type": "cpu.enormous"}, "instance_type"),
        ({"hyperparameters": {"layers": [64, 32]}}, "hyperparameters"),
        ({"max_runtime_seconds": -5}, "max_runtime_seconds"),
        ({"environment": {"LD_PRELOAD": "/tmp/evil.so"}}, "LD_PRELOAD"),
    ],
)
def test_bad_specs_are_refused_and_queue_nothing(
    http: TestClient, auth_headers: Headers, account: str, changes: dict[str, Any], field: str
) -> None:
    response = http.post(JOBS, json=spec(**changes), headers=auth_headers)
    error = assert_envelope(response, 400, "ValidationError")
    assert field in error["message"]
    assert http.get(JOBS, headers=auth_headers).json()["items"] == []


def test_the_sandbox_guardrail_refuses_big_instances(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    guardrail = {
        "name": "sandbox-instance-size-limit",
        "example": "sandbox-instance-size-limit",
        "ou": "",
    }
    made = http.post(f"{API}/guardrails", json=guardrail, headers=auth_headers)
    assert made.status_code == 201, made.text
    sandbox = f"{API}/accounts/sandbox-1/training-jobs"
    big = spec(account="sandbox-1", instance_type="gpu.large")
    assert_envelope(http.post(sandbox, json=big, headers=auth_headers), 403, "AccessDenied")
    small = spec(account="sandbox-1", instance_type="cpu.small")
    assert http.post(sandbox, json=small, headers=auth_headers).status_code == 201


def test_list_filters_and_pages(http: TestClient, auth_headers: Headers, account: str) -> None:
    for name in ("a-1", "a-2", "a-3", "b-1"):
        assert http.post(JOBS, json=spec(name), headers=auth_headers).status_code == 201
    names: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"name_prefix": "a-", "max_results": 2}
        if token:
            params["next_token"] = token
        page = http.get(JOBS, params=params, headers=auth_headers).json()
        names += [j["name"] for j in page["items"]]
        token = page["next_token"]
        if not token:
            break
    assert names == ["a-1", "a-2", "a-3"]
    tagged = http.get(JOBS, params={"tag": "team=fraud"}, headers=auth_headers).json()["items"]
    assert len(tagged) == 4
    assert (
        http.get(JOBS, params={"status": "Completed"}, headers=auth_headers).json()["items"] == []
    )
    assert_envelope(
        http.get(JOBS, params={"tag": "nokey"}, headers=auth_headers), 400, "ValidationError"
    )


def test_a_queued_job_stops_at_once_and_only_once(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    http.post(JOBS, json=spec(), headers=auth_headers)
    stopped = http.post(f"{JOBS}/churn-1/stop", headers=auth_headers)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "Stopped"
    assert_envelope(http.post(f"{JOBS}/churn-1/stop", headers=auth_headers), 409, "Conflict")
    assert_envelope(http.get(f"{JOBS}/nope", headers=auth_headers), 404, "NotFound")


def test_a_processing_job_keeps_its_outputs(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    processing = f"{API}/accounts/fraud-dev/processing-jobs"
    body = spec(outputs={"features": "ketch://fraud-dev/features/"})
    assert http.post(processing, json=body, headers=auth_headers).status_code == 201
    described = http.get(f"{processing}/churn-1", headers=auth_headers).json()
    assert described["outputs"] == {"features": "ketch://fraud-dev/features/"}
    assert described["kind"] == "processing"
