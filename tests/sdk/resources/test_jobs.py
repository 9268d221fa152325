"""``client.training_jobs`` and ``client.processing_jobs`` against the in-process app.

The test app runs no jobs, so a job stays Pending until it is stopped.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import ketch
from ketch import compute
from ketch.compute.tables import JobMetricRow, JobRow
from ketch.schemas.jobs import JobStatus, TrainingJobCreate
from ketch.sdk.resources.jobs import JobWaitTimeout
from ketch.server.context import Context
from support.settings import TEST_HOST


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


# -- logs and metrics (the test app runs no jobs: these tests play the runner) ---------


def started(context: Context, name: str, status: str, attempts: int = 1) -> str:
    with context.uow(write=True) as w:
        row = w.session.scalars(select(JobRow).where(JobRow.name == name)).one()
        row.status, row.attempt = status, attempts
        return row.id


def log(context: Context, job_id: str, text: str, attempt: int = 1) -> None:
    settings = context.settings
    path = compute.log_path(compute.roots_dir(settings.resolved_jobs_dir()), job_id, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(text)


def test_logs_are_text_chunks_with_a_position_to_read_on_from(
    client: ketch.Client, account: str, context: Context
) -> None:
    client.training_jobs.create(account, spec(environment={"API_TOKEN": "s3cr3t-value"}))
    assert list(client.training_jobs.logs(account, "churn-1")) == []
    job_id = started(context, "churn-1", "Training")
    log(context, job_id, "epoch 1 s3cr3t-value\n")

    stream = client.training_jobs.logs(account, "churn-1")
    assert "".join(stream) == "--- attempt 1 ---\nepoch 1 ***\n"
    assert (stream.next, stream.complete, stream.status) == ("1:21", False, JobStatus.TRAINING)
    log(context, job_id, "epoch 2\n")
    started(context, "churn-1", "Completed")
    rest = client.training_jobs.logs(account, "churn-1", since=stream.next)
    assert "".join(rest) == "epoch 2\n" and rest.complete
    with pytest.raises(ketch.InvalidInput, match="not a log position"):
        list(client.training_jobs.logs(account, "churn-1", since="later"))
    with pytest.raises(ketch.NotFound):
        list(client.training_jobs.logs(account, "nope"))


def test_following_reads_on_until_the_job_ends(
    client: ketch.Client, account: str, context: Context
) -> None:
    client.training_jobs.create(account, spec())

    def runner() -> None:
        job_id = started(context, "churn-1", "Training")
        for epoch in range(3):
            time.sleep(0.2)
            log(context, job_id, f"epoch {epoch}\n")
        started(context, "churn-1", "Completed")

    thread = threading.Thread(target=runner)
    thread.start()
    chunks = list(client.training_jobs.logs(account, "churn-1", follow=True, timeout=30))
    thread.join()
    assert "".join(chunks) == "--- attempt 1 ---\nepoch 0\nepoch 1\nepoch 2\n"


def test_a_follower_stops_after_its_timeout(
    client: ketch.Client, account: str, context: Context
) -> None:
    client.training_jobs.create(account, spec())
    log(context, started(context, "churn-1", "Training"), "still going\n")
    began = time.monotonic()
    stream = client.training_jobs.logs(account, "churn-1", follow=True, timeout=0.5)
    assert "".join(stream) == "--- attempt 1 ---\nstill going\n"
    assert 0.4 < time.monotonic() - began < 5
    assert not stream.complete and stream.next == "1:12"


class _BreaksOnce(httpx.BaseTransport):
    """The app's transport, whose first log answer breaks after its first record."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.log_requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/logs"):
            return response
        self.log_requests.append(str(request.url.params.get("since")))
        if len(self.log_requests) > 1:
            return response
        first = response.read().split(b"\n")[0] + b"\n"
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        return httpx.Response(200, headers=headers, stream=_Broken(first))


class _Broken(httpx.SyncByteStream):
    def __init__(self, first: bytes) -> None:
        self.first = first

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise httpx.ReadError("connection reset")


def test_a_broken_follow_reads_on_from_where_it_was(
    http: TestClient, admin_token: str, client: ketch.Client, account: str, context: Context
) -> None:
    client.training_jobs.create(account, spec())
    job_id = started(context, "churn-1", "Completed")
    log(context, job_id, "one\ntwo\n")
    transport = _BreaksOnce(http._transport)
    with ketch.Client(url=f"http://{TEST_HOST}", token=admin_token, transport=transport) as flaky:
        text = "".join(flaky.training_jobs.logs(account, "churn-1", follow=True))
        assert text == "--- attempt 1 ---\none\ntwo\n"  # nothing lost, nothing twice
        assert transport.log_requests == ["None", "1:0"]
        transport.log_requests.clear()
        with pytest.raises(ketch.BackendUnavailable, match="since='1:0'"):
            list(flaky.training_jobs.logs(account, "churn-1"))  # only a follower reconnects


def test_metrics_by_series_with_non_finite_values(
    client: ketch.Client, account: str, context: Context
) -> None:
    client.training_jobs.create(account, spec())
    job_id = started(context, "churn-1", "Completed")
    at = datetime(2026, 11, 24, tzinfo=UTC)
    with context.uow(write=True) as w:
        for seq, value in enumerate([0.5, None, math.inf], start=1):
            w.session.add(
                JobMetricRow(job_id=job_id, seq=seq, name="loss", value=value, at=at, attempt=1)
            )
    found = client.training_jobs.metrics(account, "churn-1")
    values = [p.value for p in found.series["loss"]]
    assert values[0] == 0.5 and math.isnan(values[1]) and values[2] == math.inf
    assert client.training_jobs.metrics(account, "churn-1", metric="acc").series == {}
