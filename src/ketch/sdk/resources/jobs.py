"""``client.training_jobs`` and ``client.processing_jobs``: submit, describe, list, stop,
wait, logs and metrics.

One class serves both kinds; only the path (``training-jobs`` / ``processing-jobs``) and
the body schema differ. :meth:`Jobs.wait` polls describe with an interval that starts
short (a job stopped while queued answers at once) and grows to about a second.
:meth:`Jobs.logs` reads the log as records that carry their position, so a follower
whose connection drops (or whose request reached its time limit) goes on from exactly
where it was, neither losing nor repeating output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import httpx

from ketch.core.errors import BackendUnavailable, ErrorCode, KetchError
from ketch.schemas.common import Page
from ketch.schemas.jobs import (
    Job,
    JobKind,
    JobMetrics,
    JobStatus,
    LogRecord,
    ProcessingJobCreate,
    TrainingJobCreate,
)
from ketch.sdk._pagination import iterate
from ketch.sdk._wire import build, choice, segment

if TYPE_CHECKING:
    from ketch.sdk.client import Client

PREFIX = "/api/v1"
FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})
"""States a job never leaves."""
FIRST_POLL = 0.1
"""Seconds before the first re-read; each later pause is 1.5 times longer, up to ``poll``."""

FOLLOW_SECONDS = 15.0
"""How long one follow request lasts before the next one goes on from its position (well
under the client's read timeout, so a quiet job never looks like a dead server)."""
RECONNECTS = 3
"""Consecutive broken connections a follower survives."""
NDJSON = "application/x-ndjson"

JobCreate = TrainingJobCreate | ProcessingJobCreate
OnChange = Callable[[Job], None]
"""``on_change(job)``, called by :meth:`Jobs.wait` with the first state seen and each change
of status or secondary status."""


class JobFilters(TypedDict, total=False):
    """Which jobs :meth:`Jobs.list` and :meth:`Jobs.iter_all` return; every one given must
    match. ``tag`` is ``("key", "value")`` or ``"key=value"``; times must carry a zone."""

    status: JobStatus | str | None
    name_prefix: str | None
    created_after: datetime | None
    created_before: datetime | None
    tag: tuple[str, str] | str | None


class JobWaitTimeout(KetchError, TimeoutError):
    """:meth:`Jobs.wait` gave up before the job ended; the job itself goes on.

    Both a :class:`KetchError` (the CLI reports it like any other) and a
    :class:`TimeoutError`. ``job`` is the last state seen.
    """

    default_code = ErrorCode.SERVICE_UNAVAILABLE

    def __init__(self, message: str, *, job: Job) -> None:
        super().__init__(message)
        self.job = job


def wait_timeout(job: Job, timeout: float) -> JobWaitTimeout:
    """The error of a wait that gave up after ``timeout`` seconds on ``job``."""
    return JobWaitTimeout(
        f"{job.kind.value} job '{job.name}' in {job.account} is still {job.status.value} "
        f"after {timeout:g} s; it goes on running (wait again, or stop it)",
        job=job,
    )


class Jobs:
    """Jobs of one kind in an account, addressed by name."""

    def __init__(self, client: Client, kind: JobKind) -> None:
        self._client = client
        self.kind = kind
        self._path = f"{kind.value}-jobs"
        self._model: type[JobCreate] = (
            TrainingJobCreate if kind is JobKind.TRAINING else ProcessingJobCreate
        )

    def _base(self, account: str) -> str:
        return f"{PREFIX}/accounts/{segment(account, field='account')}/{self._path}"

    def _one(self, account: str, name: str) -> str:
        return f"{self._base(account)}/{segment(name, field='name')}"

    def create(self, account: str, spec: JobCreate | Mapping[str, Any]) -> Job:
        """Submit a job; it starts ``Pending``. A spec with a ``client_token`` is safe to
        resend, so its request is retried on connection errors."""
        body = self.spec(spec)
        response = self._client.request(
            "POST",
            self._base(account),
            json=body.model_dump(mode="json", exclude_none=True),
            retry=body.client_token is not None,
        )
        return Job.model_validate(response.json())

    def spec(self, spec: JobCreate | Mapping[str, Any]) -> JobCreate:
        """``spec`` checked as this kind's body; :class:`InvalidInput` names the field."""
        if isinstance(spec, Mapping):
            return build(self._model, **spec)
        if isinstance(spec, self._model):
            return spec
        raise TypeError(
            f"{self.kind.value} jobs take a {self._model.__name__} or a dict, "
            f"not a {type(spec).__name__}"
        )

    def get(self, account: str, name: str) -> Job:
        return Job.model_validate(self._client.request("GET", self._one(account, name)).json())

    def list(
        self,
        account: str,
        *,
        max_results: int | None = None,
        next_token: str | None = None,
        **filters: Unpack[JobFilters],
    ) -> Page[Job]:
        """One page of jobs, by name as the server orders them (see :class:`JobFilters`)."""
        status, tag = filters.get("status"), filters.get("tag")
        after, before = filters.get("created_after"), filters.get("created_before")
        params = {
            "status": choice(JobStatus, status, field="status").value if status else None,
            "name_prefix": filters.get("name_prefix"),
            "created_after": after.isoformat() if after else None,
            "created_before": before.isoformat() if before else None,
            "tag": "=".join(tag) if isinstance(tag, tuple) else tag,
            "max_results": max_results,
            "next_token": next_token,
        }
        response = self._client.request("GET", self._base(account), params=params)
        return Page[Job].model_validate(response.json())

    def iter_all(
        self, account: str, *, page_size: int | None = None, **filters: Unpack[JobFilters]
    ) -> Iterator[Job]:
        """Every matching job, fetching ``page_size`` per request."""
        return iterate(
            lambda token: self.list(account, max_results=page_size, next_token=token, **filters)
        )

    def stop(self, account: str, name: str) -> Job:
        """Ask the job to stop: a queued job is ``Stopped`` at once, a running one moves
        to ``Stopping`` and its runner ends it. A job that already ended is a Conflict."""
        response = self._client.request("POST", f"{self._one(account, name)}/stop")
        return Job.model_validate(response.json())

    def metrics(self, account: str, name: str, *, metric: str | None = None) -> JobMetrics:
        """The job's metric series by name (only ``metric``'s if given); values may be
        NaN or infinite."""
        response = self._client.request(
            "GET", f"{self._one(account, name)}/metrics", params={"metric": metric}
        )
        return JobMetrics.model_validate(response.json())

    def logs(
        self,
        account: str,
        name: str,
        *,
        follow: bool = False,
        attempt: int | None = None,
        since: str | None = None,
        timeout: float | None = None,
    ) -> LogStream:
        """The job's log as text chunks (``for text in client.training_jobs.logs(...)``).

        Every attempt in order, each after a ``--- attempt N ---`` line, or only
        ``attempt``; from the start or from ``since`` (a :attr:`LogStream.next` of an
        earlier read). With ``follow``, new output keeps coming until the job ends, or
        until ``timeout`` seconds passed. Environment values are shown as ``***``.
        """
        return LogStream(
            self, account, name, follow=follow, attempt=attempt, since=since, timeout=timeout
        )

    def wait(
        self,
        account: str,
        name: str,
        *,
        timeout: float | None = None,
        poll: float = 1.0,
        on_change: OnChange | None = None,
    ) -> Job:
        """Re-read the job until it is Completed, Failed or Stopped; return that state.

        A failed job is returned, not raised: check ``job.status``. After ``timeout``
        seconds (``None``: no limit) raise :class:`JobWaitTimeout`, leaving the job
        running. ``poll`` is the longest pause between two reads.
        """
        if poll <= 0:
            raise ValueError("poll must be a positive number of seconds")
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = min(FIRST_POLL, poll)
        seen: tuple[JobStatus, str | None] | None = None
        while True:
            job = self.get(account, name)
            state = (job.status, job.secondary_status)
            if state != seen and on_change is not None:
                on_change(job)
            seen = state
            if job.status in FINAL:
                return job
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise wait_timeout(job, timeout or 0.0)
                time.sleep(min(pause, left))
            else:
                time.sleep(pause)
            pause = min(pause * 1.5, poll)


class LogStream:
    """Text chunks of a job's log; see :meth:`Jobs.logs`.

    After (or during) the iteration, :attr:`next` is where a later read goes on,
    :attr:`complete` says whether the job ended and everything was read, and
    :attr:`status` is the job's status at the last answer.
    """

    def __init__(
        self,
        jobs: Jobs,
        account: str,
        name: str,
        *,
        follow: bool,
        attempt: int | None,
        since: str | None,
        timeout: float | None,
    ) -> None:
        self._jobs = jobs
        self._path = f"{jobs._one(account, name)}/logs"
        self._follow = follow
        self._attempt = attempt
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self.next: str | None = since
        self.complete = False
        self.status: JobStatus | None = None

    def __iter__(self) -> Iterator[str]:
        broken = 0
        while True:
            left = None if self._deadline is None else self._deadline - time.monotonic()
            if left is not None and left <= 0 and self._follow:
                return
            try:
                ended = yield from self._request(left)
            except httpx.TransportError as exc:
                broken += 1
                if not self._follow or broken > RECONNECTS:
                    raise BackendUnavailable(
                        f"the log stream broke ({type(exc).__name__}); "
                        f"read on with since={self.next!r}"
                    ) from exc
                time.sleep(0.2 * 2**broken)
                continue
            broken = 0
            if self.complete or not self._follow or not ended:
                return

    def _request(self, left: float | None) -> Generator[str, None, bool]:
        """One request's chunks; returns whether its end record arrived."""
        params: dict[str, Any] = {"attempt": self._attempt, "since": self.next}
        if self._follow:
            params["follow"] = "true"
            params["max_seconds"] = max(0.1, min(FOLLOW_SECONDS, left or FOLLOW_SECONDS))
        with self._jobs._client.stream(
            "GET", self._path, params=params, headers={"Accept": NDJSON}
        ) as response:
            for line in response.iter_lines():
                if not line:
                    continue
                record = LogRecord.model_validate_json(line)
                if record.next is not None:
                    self.next = record.next
                if record.end:
                    self.complete, self.status = record.complete, record.status
                    return True
                if record.text:
                    yield record.text
        return False
