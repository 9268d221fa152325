"""``client.training_jobs`` and ``client.processing_jobs`` against the in-process app.

The test app runs no jobs, so a job stays Pending until it is stopped.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import ketch
from ketch.schemas.jobs import JobStatus, TrainingJobCreate
from ketch.sdk.resources.jobs import JobWaitTimeout


@pytest.fixture
def account(client: ketch.Client) -> str:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    return "fraud-dev"


def spec(name: str = "churn-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "code": {"source_uri": "ketch://fraud-dev/code/sourcedir.tar.gz", "entry_point": "t.py"},
        "inputs": {"train": "ketch://fraud-dev/datasets/churn/"},
        "output_uri": "ketch://fraud-dev/jobs/",
        "hyperparameters": {"epochs": 3},
        "tags": {"team": "fraud"},
    }
    body.update(changes)
    return body


def test_create_from_a_dict_or_a_model_then_get(client: ketch.Client, account: str) -> None:
    made = client.training_jobs.create(account, spec())
    typed = client.training_jobs.create(account, TrainingJobCreate(**spec("churn-2")))

    assert (made.status, made.kind.value, typed.name) == (JobStatus.PENDING, "training", "churn-2")
    got = client.training_jobs.get(account, "churn-1")
    assert got.spec.hyperparameters == {"epochs": 3}
    assert got.krn == "krn:ketch:fraud-dev:training-job/churn-1"


def test_the_kinds_are_apart(client: ketch.Client, account: str) -> None:
    client.processing_jobs.create(account, spec(outputs={"out": "ketch://fraud-dev/out/"}))

    assert client.processing_jobs.get(account, "churn-1").kind.value == "processing"
    with pytest.raises(ketch.NotFound):
        client.training_jobs.get(account, "churn-1")


def test_a_bad_spec_is_refused_before_sending(client: ketch.Client, account: str) -> None:
    with pytest.raises(ketch.InvalidInput, match="instance_type"):
        client.training_jobs.create(account, spec(instance_type="cpu.enormous"))
    with pytest.raises(ketch.InvalidInput, match="outputs"):  # training has no outputs
        client.training_jobs.create(account, spec(outputs={"o": "ketch://fraud-dev/o/"}))
    with pytest.raises(TypeError, match="TrainingJobCreate or a dict"):
        client.training_jobs.create(account, 42)  # type: ignore[arg-type]
    assert client.training_jobs.list(account).items == []


def test_list_filters_and_iter_all_pages(client: ketch.Client, account: str) -> None:
    for name in ("a-1", "a-2", "a-3", "b-1"):
        client.training_jobs.create(account, spec(name, tags={"group": name[0]}))
    client.training_jobs.stop(account, "a-2")

    page = client.training_jobs.list(account, name_prefix="a-", max_results=2)
    assert len(page.items) == 2 and page.next_token is not None
    every = {j.name for j in client.training_jobs.iter_all(account, name_prefix="a-", page_size=1)}
    assert every == {"a-1", "a-2", "a-3"}
    stopped = client.training_jobs.list(account, status="Stopped").items
    assert [j.name for j in stopped] == ["a-2"]
    tagged = client.training_jobs.list(account, tag=("group", "b")).items
    assert [j.name for j in tagged] == ["b-1"]
    assert [j.name for j in client.training_jobs.list(account, tag="group=b").items] == ["b-1"]
    with pytest.raises(ketch.InvalidInput, match="status: 'Done' is not one of"):
        client.training_jobs.list(account, status="Done")


def test_stop_then_wait_returns_the_stopped_job_at_once(client: ketch.Client, account: str) -> None:
    client.training_jobs.create(account, spec())
    stopped = client.training_jobs.stop(account, "churn-1")
    seen: list[JobStatus] = []

    started = time.monotonic()
    final = client.training_jobs.wait(
        account, "churn-1", timeout=5, on_change=lambda j: seen.append(j.status)
    )

    assert time.monotonic() - started < 1
    assert stopped.status == final.status == JobStatus.STOPPED
    assert seen == [JobStatus.STOPPED]
    assert [t.status for t in final.transitions] == [JobStatus.PENDING, JobStatus.STOPPED]
    with pytest.raises(ketch.Conflict, match="already ended"):
        client.training_jobs.stop(account, "churn-1")


def test_wait_gives_up_after_its_timeout(client: ketch.Client, account: str) -> None:
    client.training_jobs.create(account, spec())

    started = time.monotonic()
    with pytest.raises(JobWaitTimeout, match=r"still Pending after 0\.3 s") as caught:
        client.training_jobs.wait(account, "churn-1", timeout=0.3, poll=0.05)

    assert 0.3 <= time.monotonic() - started < 2
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, ketch.KetchError)
    assert caught.value.job.status is JobStatus.PENDING
    assert client.training_jobs.get(account, "churn-1").status is JobStatus.PENDING  # untouched


def test_wait_refuses_a_zero_poll(client: ketch.Client, account: str) -> None:
    with pytest.raises(ValueError, match="poll"):
        client.training_jobs.wait(account, "churn-1", poll=0)


def test_an_unknown_job_is_not_found(client: ketch.Client, account: str) -> None:
    with pytest.raises(ketch.NotFound):
        client.training_jobs.get(account, "nope")
    with pytest.raises(ketch.NotFound):
        client.training_jobs.wait(account, "nope", timeout=1)
