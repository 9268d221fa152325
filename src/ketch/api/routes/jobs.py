"""Routes of the job service: submit, describe, list and stop training and processing jobs.

Both kinds share one set of handlers, registered once per kind with that kind's actions,
path (``training-jobs``, ``processing-jobs``) and body schema. The annotations are
evaluated when each handler is defined (no ``from __future__ import annotations``): they
name the kind's body model and authorisation dependency from the enclosing call.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

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
from ketch.core.errors import InvalidInput
from ketch.iam import Action
from ketch.schemas.common import Page
from ketch.schemas.jobs import Job, JobKind, JobStatus, ProcessingJobCreate, TrainingJobCreate

router = APIRouter(tags=["jobs"])


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
                operation=k.create.value,
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
        created_after: datetime | None = None,
        created_before: datetime | None = None,
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


_register(TRAINING, TrainingJobCreate)
_register(PROCESSING, ProcessingJobCreate)
