"""Routes of the job service: submit, describe, list and stop training and processing jobs;
read their logs and metrics.

Both kinds share one set of handlers, registered once per kind with that kind's actions,
path (``training-jobs``, ``processing-jobs``) and body schema. The annotations are
evaluated when each handler is defined (no ``from __future__ import annotations``): they
name the kind's body model and authorisation dependency from the enclosing call.

Logs and metrics are part of what describing a job shows, so they take the kind's
Describe action. Logs stream (``compute.logs``): plain text, or with ``Accept:
application/x-ndjson`` one :class:`LogRecord` per line, each with the position to resume
from. Each read runs in a worker thread; a follower waits between reads on the event loop
(holding no thread, and no transaction), and one that left is noticed within a poll
(0.2 s) and its reader closed.
"""

from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from ketch import compute
from ketch.api import resources
from ketch.api.deps import Guard, authorize
from ketch.api.idempotent import create_once
from ketch.api.pagination import (
    DEFAULT_MAX_RESULTS,
    MaxResults,
    NextToken,
    decode_token,
    encode_token,
)
from ketch.compute.logs import POLL_SECONDS
from ketch.core.errors import InvalidInput
from ketch.iam import Action
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

router = APIRouter(tags=["jobs"])

NDJSON = "application/x-ndjson"
TEXT = "text/plain; charset=utf-8"
_LOG_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The log: text, or one LogRecord per line (Accept: application/x-ndjson)",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            NDJSON: {"schema": {"type": "string"}},
        },
    }
}


@dataclass(frozen=True)
class KindRoutes:
    kind: JobKind
    path: str
    entity_type: str
    krn_type: str
    create: Action
    describe: Action
    list: Action
    stop: Action


TRAINING = KindRoutes(
    JobKind.TRAINING,
    "training-jobs",
    "TrainingJob",
    "training-job",
    Action.CREATE_TRAINING_JOB,
    Action.DESCRIBE_TRAINING_JOB,
    Action.LIST_TRAINING_JOBS,
    Action.STOP_TRAINING_JOB,
)
PROCESSING = KindRoutes(
    JobKind.PROCESSING,
    "processing-jobs",
    "ProcessingJob",
    "processing-job",
    Action.CREATE_PROCESSING_JOB,
    Action.DESCRIBE_PROCESSING_JOB,
    Action.LIST_PROCESSING_JOBS,
    Action.STOP_PROCESSING_JOB,
)


def _tag(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    key, sep, tag_value = value.partition("=")
    if not sep or not key:
        raise InvalidInput("tag filter must look like key=value")
    return key, tag_value


def _register(k: KindRoutes, body_model: type[TrainingJobCreate | ProcessingJobCreate]) -> None:
    base = f"/accounts/{{account_id}}/{k.path}"
    one = resources.job_from_path(k.entity_type, k.krn_type)

    @router.post(
        base,
        status_code=status.HTTP_201_CREATED,
        summary=f"Submit a {k.kind.value} job",
        name=f"create_{k.kind.value}_job",
    )
    def create(
        account_id: str,
        body: body_model,  # type: ignore[valid-type]
        guard: Annotated[
            Guard,
            Depends(authorize(k.create, resources.new_job_from_body(k.entity_type, k.krn_type))),
        ],
    ) -> Job:
        with guard.write() as uow:
            job = create_once(
                uow,
                guard.caller,
                # Per account: the same token sent to another account is another request.
                operation=f"{k.create.value}:{account_id}",
                body=body,
                create=lambda: compute.submit_job(
                    uow, account_id, k.kind, body, created_by=guard.caller.name
                ),
                fetch=lambda job_id: compute.get_job_by_id(uow, job_id),
                id_of=lambda job: job.id,
            )
        guard.context.job_wakeup.set()  # committed: the runner may claim it now
        return job

    @router.get(base, summary=f"List {k.kind.value} jobs", name=f"list_{k.kind.value}_jobs")
    def list_jobs(
        account_id: str,
        guard: Annotated[
            Guard,
            Depends(authorize(k.list, resources.jobs_in_account(k.entity_type, k.krn_type))),
        ],
        status_equals: Annotated[JobStatus | None, Query(alias="status")] = None,
        name_prefix: Annotated[str | None, Query(max_length=63)] = None,
        created_after: AwareDatetime | None = None,
        created_before: AwareDatetime | None = None,
        tag: Annotated[str | None, Query(max_length=400, description="key=value")] = None,
        max_results: MaxResults = DEFAULT_MAX_RESULTS,
        next_token: NextToken = None,
    ) -> Page[Job]:
        listing = f"{k.path}/{account_id}"
        with guard.context.uow() as uow:
            items, last = compute.list_jobs(
                uow,
                account_id,
                k.kind,
                status=status_equals,
                name_prefix=name_prefix,
                created_after=created_after,
                created_before=created_before,
                tag=_tag(tag),
                limit=max_results,
                after=decode_token(listing, next_token),
            )
        return Page[Job](items=items, next_token=encode_token(listing, last))

    @router.get(
        f"{base}/{{name}}",
        summary=f"Describe a {k.kind.value} job",
        name=f"describe_{k.kind.value}_job",
    )
    def describe(
        account_id: str,
        name: str,
        guard: Annotated[Guard, Depends(authorize(k.describe, one))],
    ) -> Job:
        with guard.context.uow() as uow:
            return compute.get_job(uow, account_id, k.kind, name)

    @router.post(
        f"{base}/{{name}}/stop",
        summary=f"Stop a {k.kind.value} job",
        name=f"stop_{k.kind.value}_job",
    )
    def stop(
        account_id: str,
        name: str,
        guard: Annotated[Guard, Depends(authorize(k.stop, one))],
    ) -> Job:
        with guard.write() as uow:
            return compute.stop_job(uow, account_id, k.kind, name)

    @router.get(
        f"{base}/{{name}}/logs",
        summary=f"Read or follow a {k.kind.value} job's log",
        name=f"get_{k.kind.value}_job_logs",
        response_class=StreamingResponse,
        responses=_LOG_RESPONSES,
    )
    async def logs(
        request: Request,
        account_id: str,
        name: str,
        guard: Annotated[Guard, Depends(authorize(k.describe, one))],
        attempt: Annotated[
            int | None, Query(ge=1, le=10_000, description="Only this attempt (no header)")
        ] = None,
        since: Annotated[
            str | None,
            Query(max_length=40, description="Resume here: a record's 'next' (attempt:offset)"),
        ] = None,
        follow: Annotated[bool, Query(description="Stream new output until the job ends")] = False,
        max_seconds: Annotated[
            float | None, Query(gt=0, le=3600, description="Stop following after this long")
        ] = None,
    ) -> StreamingResponse:
        settings = guard.context.settings

        def open_log() -> compute.JobLog:
            with guard.context.uow() as uow:
                return compute.open_job_log(
                    uow,
                    compute.roots_dir(settings.resolved_jobs_dir()),
                    account_id,
                    k.kind,
                    name,
                    attempt=attempt,
                    since=since,
                )

        log = await anyio.to_thread.run_sync(open_log)
        records = log.records(guard.context.uow, follow=follow, max_seconds=max_seconds)
        ndjson = NDJSON in request.headers.get("accept", "")
        return StreamingResponse(
            _stream(request, records, ndjson=ndjson),
            media_type=NDJSON if ndjson else TEXT,
            headers={"Cache-Control": "no-store"},
        )

    @router.get(
        f"{base}/{{name}}/metrics",
        summary=f"A {k.kind.value} job's metric series",
        name=f"get_{k.kind.value}_job_metrics",
    )
    def metrics(
        account_id: str,
        name: str,
        guard: Annotated[Guard, Depends(authorize(k.describe, one))],
        metric: Annotated[
            str | None, Query(max_length=255, description="Only this metric's series")
        ] = None,
    ) -> JobMetrics:
        with guard.context.uow() as uow:
            return compute.get_job_metrics(uow, account_id, k.kind, name, metric=metric)


async def _stream(
    request: Request, records: Generator[LogRecord | None, None, None], *, ndjson: bool
) -> AsyncIterator[bytes]:
    """The records as the response body; each is read in a worker thread (files, the
    database), and the reader is closed when the body ends or the client went away."""
    try:
        while True:
            record = await anyio.to_thread.run_sync(next, records, _DONE)
            if record is _DONE:
                return
            if isinstance(record, LogRecord):
                if ndjson:
                    yield record.model_dump_json(exclude_defaults=True).encode() + b"\n"
                elif record.text:
                    yield record.text.encode()
            elif record is None:  # nothing new: wait here, holding no worker thread
                await anyio.sleep(POLL_SECONDS)
            if await request.is_disconnected():
                return
    finally:
        records.close()


_DONE = object()

_register(TRAINING, TrainingJobCreate)
_register(PROCESSING, ProcessingJobCreate)
