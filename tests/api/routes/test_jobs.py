"""The job routes over HTTP: submit, describe, list, stop, logs and metrics, with the bad
input of the issue."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ketch import compute
from ketch.compute.tables import JobMetricRow, JobRow
from ketch.server.context import Context
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
    assert all([t["status"] for t in j["transitions"]] == ["Pending"] for j in tagged)
    assert (
        http.get(JOBS, params={"status": "Completed"}, headers=auth_headers).json()["items"] == []
    )
    assert_envelope(
        http.get(JOBS, params={"tag": "nokey"}, headers=auth_headers), 400, "ValidationError"
    )
    # a time filter must say its time zone (a naive one gave a 500)
    naive = http.get(JOBS, params={"created_after": "2024-01-01T00:00:00"}, headers=auth_headers)
    assert_envelope(naive, 400, "ValidationError")
    after = {"created_after": "2024-01-01T00:00:00Z"}
    before = {"created_before": "2024-01-01T00:00:00+02:00"}
    assert len(http.get(JOBS, params=after, headers=auth_headers).json()["items"]) == 4
    assert http.get(JOBS, params=before, headers=auth_headers).json()["items"] == []


def test_a_client_token_is_per_account(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    """The same token and body sent to two accounts makes two jobs, one in each."""
    first = http.post(JOBS, json=spec(client_token="tok-1"), headers=auth_headers)
    again = http.post(JOBS, json=spec(client_token="tok-1"), headers=auth_headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    other = f"{API}/accounts/fraud-prod/training-jobs"
    body = spec(account="fraud-prod", client_token="tok-1")
    elsewhere = http.post(other, json=body, headers=auth_headers)
    assert elsewhere.status_code == 201, elsewhere.text
    assert elsewhere.json()["account"] == "fraud-prod"
    assert elsewhere.json()["id"] != first.json()["id"]


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


def test_more_than_one_instance_is_refused_for_now(
    http: TestClient, auth_headers: Headers, account: str
) -> None:
    response = http.post(JOBS, json=spec(instance_count=2), headers=auth_headers)
    error = assert_envelope(response, 400, "ValidationError")
    assert "instance_count" in error["message"] and "use instance_count 1" in error["message"]


# -- logs and metrics -------------------------------------------------------------------


def started(context: Context, name: str, status: str, attempts: int = 1) -> str:
    """Move a submitted job as a runner would (the test app runs none); its id."""
    with context.uow(write=True) as w:
        row = w.session.scalars(select(JobRow).where(JobRow.name == name)).one()
        row.status, row.attempt = status, attempts
        return row.id


def log(context: Context, job_id: str, attempt: int, text: str) -> None:
    settings = context.settings
    path = compute.log_path(compute.roots_dir(settings.resolved_jobs_dir()), job_id, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(text)


def test_logs_are_text_with_secrets_masked_or_records_with_positions(
    http: TestClient, auth_headers: Headers, account: str, context: Context
) -> None:
    http.post(JOBS, json=spec(), headers=auth_headers)
    assert http.get(f"{JOBS}/churn-1/logs", headers=auth_headers).text == ""  # not started
    job_id = started(context, "churn-1", "Failed", attempts=2)
    log(context, job_id, 1, "token s3cr3t-value\n")
    log(context, job_id, 2, "retried\n")

    text = http.get(f"{JOBS}/churn-1/logs", headers=auth_headers)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text == "--- attempt 1 ---\ntoken ***\n--- attempt 2 ---\nretried\n"
    only = http.get(f"{JOBS}/churn-1/logs", params={"attempt": 2}, headers=auth_headers)
    assert only.text == "retried\n"

    ndjson = {**auth_headers, "Accept": "application/x-ndjson"}
    lines = http.get(f"{JOBS}/churn-1/logs", headers=ndjson).text.splitlines()
    records = [json.loads(line) for line in lines]
    assert records[1] == {"text": "token ***\n", "attempt": 1, "next": "1:19"}
    assert records[-1] == {"next": "2:8", "end": True, "complete": True, "status": "Failed"}
    resumed = http.get(f"{JOBS}/churn-1/logs", params={"since": "1:6"}, headers=auth_headers)
    assert resumed.text == "***\n--- attempt 2 ---\nretried\n"
    assert "s3cr3t-value" not in text.text + "".join(lines) + resumed.text


def test_following_streams_until_the_job_ends_and_masks_across_writes(
    http: TestClient, auth_headers: Headers, account: str, context: Context
) -> None:
    http.post(JOBS, json=spec(), headers=auth_headers)
    job_id = started(context, "churn-1", "Training")

    def runner() -> None:
        time.sleep(0.3)
        log(context, job_id, 1, "epoch 1 token s3cr")
        time.sleep(0.3)
        log(context, job_id, 1, "3t-value\nepoch 2\n")
        time.sleep(0.3)
        started(context, "churn-1", "Completed")

    thread = threading.Thread(target=runner)
    thread.start()
    response = http.get(f"{JOBS}/churn-1/logs", params={"follow": "true"}, headers=auth_headers)
    thread.join()
    assert response.text == "--- attempt 1 ---\nepoch 1 token ***\nepoch 2\n"


def test_a_bounded_follow_ends_with_where_to_resume(
    http: TestClient, auth_headers: Headers, account: str, context: Context
) -> None:
    http.post(JOBS, json=spec(), headers=auth_headers)
    job_id = started(context, "churn-1", "Training")
    log(context, job_id, 1, "working\n")
    ndjson = {**auth_headers, "Accept": "application/x-ndjson"}
    params = {"follow": "true", "max_seconds": "0.3"}
    began = time.monotonic()
    lines = http.get(f"{JOBS}/churn-1/logs", params=params, headers=ndjson).text.splitlines()
    assert 0.3 <= time.monotonic() - began < 3, "it followed, and for max_seconds only"
    end = json.loads(lines[-1])
    assert end == {"next": "1:8", "end": True, "status": "Training"}  # complete: false


def test_bad_log_requests(http: TestClient, auth_headers: Headers, account: str) -> None:
    http.post(JOBS, json=spec(), headers=auth_headers)
    get = http.get
    assert_envelope(get(f"{JOBS}/nope/logs", headers=auth_headers), 404, "NotFound")
    assert_envelope(get(f"{JOBS}/nope/metrics", headers=auth_headers), 404, "NotFound")
    bad = get(f"{JOBS}/churn-1/logs", params={"since": "x"}, headers=auth_headers)
    assert "is not a log position" in assert_envelope(bad, 400, "ValidationError")["message"]
    for params in ({"attempt": "0"}, {"max_seconds": "0"}, {"max_seconds": "9999"}):
        response = get(f"{JOBS}/churn-1/logs", params=params, headers=auth_headers)
        assert_envelope(response, 400, "ValidationError")


def test_logs_and_metrics_need_the_describe_action(
    http: TestClient, auth_headers: Headers, account: str, context: Context
) -> None:
    http.post(JOBS, json=spec(), headers=auth_headers)
    log(context, started(context, "churn-1", "Completed"), 1, "secret-ish output\n")
    # Sees the account and lists its jobs, but may not describe one.
    policy = (
        "permit(principal in ?principal, action in "
        '[Ketch::Action::"ListTrainingJobs", Ketch::Action::"DescribeAccount"], '
        "resource in ?resource);"
    )
    password = "Correct-Horse-9-battery"
    user = {"name": "lister", "password": password}
    assignment = {
        "permission_set": "JobLister",
        "principal_type": "user",
        "principal": "lister",
        "target_type": "account",
        "target": "fraud-dev",
    }
    for path, body in (
        ("permission-sets", {"name": "JobLister", "policy_text": policy}),
        ("users", user),
        ("assignments", assignment),
    ):
        made = http.post(f"{API}/{path}", json=body, headers=auth_headers)
        assert made.status_code == 201, made.text
    login = {"username": "lister", "password": password}
    token = http.post(f"{API}/auth/login", json=login).json()["token"]
    lister = {"Authorization": f"Bearer {token}"}

    assert http.get(JOBS, headers=lister).status_code == 200
    for path in ("logs", "metrics"):
        denied = http.get(f"{JOBS}/churn-1/{path}", headers=lister)
        assert_envelope(denied, 403, "AccessDenied")
        assert "secret-ish" not in denied.text


def test_metrics_come_back_as_series_with_non_finite_values_as_strings(
    http: TestClient, auth_headers: Headers, account: str, context: Context
) -> None:
    http.post(JOBS, json=spec(), headers=auth_headers)
    job_id = started(context, "churn-1", "Completed")
    at = datetime(2026, 11, 24, tzinfo=UTC)
    with context.uow(write=True) as w:
        for seq, (name, value, step) in enumerate(
            [
                ("loss", 0.5, None),
                ("loss", None, None),
                ("acc", math.inf, 3),
                ("acc", -math.inf, 4),
            ],
            start=1,
        ):
            w.session.add(
                JobMetricRow(
                    job_id=job_id, seq=seq, name=name, value=value, step=step, at=at, attempt=1
                )
            )
    found = http.get(f"{JOBS}/churn-1/metrics", headers=auth_headers)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["job"] == "krn:ketch:fraud-dev:training-job/churn-1"
    assert [p["value"] for p in body["series"]["loss"]] == [0.5, "NaN"]
    assert [(p["value"], p["step"]) for p in body["series"]["acc"]] == [
        ("Infinity", 3),
        ("-Infinity", 4),
    ]
    only = http.get(f"{JOBS}/churn-1/metrics", params={"metric": "acc"}, headers=auth_headers)
    assert list(only.json()["series"]) == ["acc"]
