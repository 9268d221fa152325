"""Processing and training jobs on the wire.

A job spec is checked whole before anything is queued: unknown instance types, numbers
out of range, hyperparameters that are not plain values, URIs that are not ``ketch://``
and environment keys that would override the job contract are refused with the field's
name. Limits follow SageMaker's where it has them (100 hyperparameters of at most 2,500
characters, 40 metric definitions, 28 days of runtime). One instance per job for now:
only one host runs a job today, and billing for hosts that do not exist would be wrong.

Metric values may be NaN or infinite (a diverging loss is worth recording); on the wire
they are the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, since JSON has no
numbers for them, and read back as floats.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from ketch.core.artifact_uri import parse_uri
from ketch.core.errors import InvalidInput
from ketch.core.instances import DEFAULT_INSTANCE_TYPE, instance_type
from ketch.core.job_rules import (
    check_names,
    validate_hyperparameters,
    validate_user_environment,
)
from ketch.core.krn import NAME_PATTERN, NAME_RULE, validate_name
from ketch.schemas.common import ClientToken, ReadModel, WireModel, checked_by
from ketch.schemas.org import Tags

MAX_RUNTIME_SECONDS = 28 * 24 * 3600


def _object_uri(value: str) -> str:
    parse_uri(value)
    return value


def _prefix_uri(value: str) -> str:
    parse_uri(value, allow_prefix=True)
    return value


def _known_instance_type(value: str) -> str:
    return instance_type(value).name


def _one_instance(value: int) -> int:
    if value != 1:
        raise InvalidInput(
            f"instance_count {value} is not supported yet: a job runs on one instance; "
            "use instance_count 1 (or a larger instance_type)"
        )
    return value


def _regex(value: str) -> str:
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise InvalidInput(f"metric regex {value[:80]!r} does not compile: {exc}") from None
    if pattern.groups < 1:
        raise InvalidInput(f"metric regex {value[:80]!r} needs a group capturing the value")
    return value


def _entry_point(value: str) -> str:
    if ":" not in value and any(part in {"", ".", ".."} for part in value.split("/")):
        raise InvalidInput(f"entry point {value!r} must be a relative path inside the bundle")
    return value


def _channels(value: dict[str, str]) -> dict[str, str]:
    check_names("channel", tuple(value))
    return value


JobName = Annotated[
    str,
    AfterValidator(checked_by(lambda value: validate_name(value, kind="job name"))),
    Field(description=f"Job name: {NAME_RULE}.", json_schema_extra={"pattern": NAME_PATTERN}),
]
ObjectUri = Annotated[
    str,
    Field(max_length=1100, description="ketch://<account>/<key>"),
    AfterValidator(checked_by(_object_uri)),
]
PrefixUri = Annotated[
    str,
    Field(max_length=1100, description="ketch://<account>/<prefix>/"),
    AfterValidator(checked_by(_prefix_uri)),
]
PlainValue = StrictBool | StrictInt | StrictFloat | StrictStr
"""A hyperparameter value as JSON gives it; names, finiteness, lengths and counts are the
job rules' (``validate_hyperparameters``)."""
Channels = Annotated[
    dict[str, ObjectUri | PrefixUri], Field(max_length=20), AfterValidator(checked_by(_channels))
]
OutputChannels = Annotated[
    dict[str, PrefixUri], Field(max_length=20), AfterValidator(checked_by(_channels))
]
InstanceTypeName = Annotated[
    str, Field(max_length=40), AfterValidator(checked_by(_known_instance_type))
]


class JobKind(StrEnum):
    TRAINING = "training"
    PROCESSING = "processing"


class JobStatus(StrEnum):
    """SageMaker's states, in the order a job passes them."""

    PENDING = "Pending"
    STARTING = "Starting"
    DOWNLOADING = "Downloading"
    TRAINING = "Training"
    PROCESSING = "Processing"
    UPLOADING = "Uploading"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class FailureKind(StrEnum):
    USER = "user"
    """The job's code failed (a non-zero exit, ``output/failure``, its runtime limit)."""
    PLATFORM = "platform"
    """ketch failed it (an executor lost, an upload failed); retried with back-off."""


class CodeSpec(WireModel):
    source_uri: ObjectUri = Field(description="The source bundle, a sourcedir.tar.gz")
    entry_point: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            pattern=r"^(?:[A-Za-z0-9_./-]+\.(?:py|sh)|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$",
            description="A script in the bundle (train.py) or module:function",
        ),
        AfterValidator(checked_by(_entry_point)),
    ]
    image: str | None = Field(None, max_length=512, description="Reserved for container executors")


class MetricDefinition(WireModel):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:/-]+$")
    regex: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(checked_by(_regex))]


class RetryStrategy(WireModel):
    maximum_retry_attempts: int = Field(
        0, ge=0, le=30, description="Retries after a platform error (user errors never retry)"
    )


class JobSpec(WireModel):
    """What both kinds of job carry."""

    name: JobName
    code: CodeSpec
    inputs: Channels = Field(default_factory=dict)
    output_uri: PrefixUri
    hyperparameters: Annotated[
        dict[str, PlainValue], AfterValidator(checked_by(validate_hyperparameters))
    ] = Field(default_factory=dict)
    environment: Annotated[
        dict[str, str], AfterValidator(checked_by(validate_user_environment))
    ] = Field(default_factory=dict)
    instance_type: InstanceTypeName = DEFAULT_INSTANCE_TYPE
    instance_count: Annotated[int, AfterValidator(checked_by(_one_instance))] = Field(
        1, description="Instances to run on; only 1 is supported for now"
    )
    max_runtime_seconds: int = Field(86_400, ge=1, le=MAX_RUNTIME_SECONDS)
    retry_strategy: RetryStrategy = Field(default_factory=RetryStrategy)
    checkpoint_uri: PrefixUri | None = None
    metric_definitions: list[MetricDefinition] = Field(default_factory=list, max_length=40)
    tags: Tags = Field(default_factory=dict)
    client_token: ClientToken | None = None


class TrainingJobCreate(JobSpec):
    pass


class ProcessingJobCreate(JobSpec):
    outputs: OutputChannels = Field(default_factory=dict)


class StatusTransition(ReadModel):
    status: JobStatus
    at: datetime
    message: str | None = None


class Job(ReadModel):
    id: str
    krn: str
    account: str
    name: str
    kind: JobKind
    status: JobStatus
    secondary_status: str | None = None
    failure_reason: str | None = None
    failure_kind: FailureKind | None = None
    attempt: int = 0
    spec: JobSpec
    """Environment values are shown as ``(hidden)``: they may be secrets."""
    outputs: dict[str, str] = Field(default_factory=dict)
    """A processing job's output folders (name -> URI); empty for training jobs."""
    transitions: list[StatusTransition] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    billable_seconds: float | None = None
    cost: float | None = None
    model_artifact_uri: str | None = None
    output_artifact_uri: str | None = None


class MetricPoint(ReadModel):
    """One value of a job's metric: from a metric definition's regex on the log, or from
    ``ketch.log_metric`` in the job. NaN and infinities travel as strings (see above)."""

    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")

    value: float
    step: int | None = None
    """The step given to ``ketch.log_metric``; ``None`` for points read from the log."""
    timestamp: datetime
    attempt: int


class JobMetrics(ReadModel):
    """A job's metric series, by metric name, each in the order it was recorded."""

    job: str
    """The job's KRN."""
    series: dict[str, list[MetricPoint]] = Field(default_factory=dict)


class LogRecord(ReadModel):
    """One line of a job's log as ``application/x-ndjson``: a piece of the log's text, or
    (``end``) the last record of a response.

    ``next`` is where to resume (pass it as ``since``); it is ``None`` while nothing has
    been served (nothing ran yet). The end record says whether the log is ``complete``
    (the job ended and everything was served) and the job's ``status`` then.
    """

    text: str = ""
    attempt: int | None = None
    next: str | None = None
    end: bool = False
    complete: bool = False
    status: JobStatus | None = None
