"""`ketch jobs`: run a local folder as a training or processing job, list, describe, stop,
read or follow its log, show its metrics."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.table import Table

from ketch.cli._client import get_client, reported_errors
from ketch.cli._input import YesOption, confirm_or_abort, parse_pairs
from ketch.cli.output import (
    OutputFormat,
    OutputOption,
    console,
    emit_json,
    emit_record,
    emit_table,
    err_console,
)
from ketch.core.instances import DEFAULT_INSTANCE_TYPE
from ketch.schemas.common import MAX_PAGE_SIZE
from ketch.schemas.jobs import Job, JobMetrics, JobStatus, MetricPoint
from ketch.sdk import jobs as sdk_jobs
from ketch.sdk.resources.jobs import Jobs

app = typer.Typer(
    help="Jobs: training and processing jobs in an account (training unless --processing).",
    no_args_is_help=True,
)

COLUMNS = (
    ("name", "name"),
    ("status", "status"),
    ("secondary", "secondary_status"),
    ("instance", "instance_type"),
    ("created", "created_at"),
    ("ended", "ended_at"),
)
NameArg = Annotated[str, typer.Argument(help="The job's name.")]
AccountOption = Annotated[str, typer.Option("--account", "-a", help="Account id, e.g. fraud-dev.")]
ProcessingOption = Annotated[
    bool, typer.Option("--processing", help="A processing job (default: a training job).")
]


class _Row(BaseModel):
    name: str
    status: JobStatus
    secondary_status: str | None
    instance_type: str
    created_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> _Row:
        return cls(
            name=job.name,
            status=job.status,
            secondary_status=job.secondary_status,
            instance_type=job.spec.instance_type,
            created_at=job.created_at,
            ended_at=job.ended_at,
        )


def parse_value(text: str) -> bool | int | float | str:
    """``true``/``false`` as booleans, whole numbers as ints, finite decimals as floats;
    anything else stays the string it was."""
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _kind(ctx: typer.Context, processing: bool) -> Jobs:
    client = get_client(ctx)
    return client.processing_jobs if processing else client.training_jobs


@app.command("run")
def run_job(
    ctx: typer.Context,
    entry_point: Annotated[
        str, typer.Argument(help="Script in the source dir (train.py) or package.module:function.")
    ],
    source_dir: Annotated[str, typer.Option(help="The folder to pack and upload.")] = ".",
    input: Annotated[
        list[str] | None,
        typer.Option("--input", help="Input channel as name=ketch://...; repeat for more."),
    ] = None,
    hp: Annotated[
        list[str] | None,
        typer.Option("--hp", help="Hyperparameter key=value (numbers, true/false); repeat."),
    ] = None,
    instance_type: Annotated[
        str, typer.Option(help="e.g. cpu.small, gpu.large.")
    ] = DEFAULT_INSTANCE_TYPE,
    account: Annotated[
        str | None, typer.Option(help="Account id (default: the one the inputs name).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Job name (default: generated).")] = None,
    output_uri: Annotated[
        str | None, typer.Option(help="Output prefix (default: ketch://<account>/jobs/).")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Environment variable K=V; repeat.")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric", help="Metric from the log, name=regex (first group is the value); repeat."
        ),
    ] = None,
    max_runtime: Annotated[
        int | None, typer.Option("--max-runtime", help="Runtime limit in seconds.")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once submitted, without waiting.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Stop waiting after this many seconds (the job goes on)."),
    ] = None,
    processing: ProcessingOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Pack a local folder, upload it, submit a job and (unless --no-wait) wait for its end.

    The job's log and its status changes go to stderr; exits 1 if the job ends Failed or
    Stopped.
    """
    inputs = parse_pairs(input, "--input")
    metrics = [{"name": k, "regex": v} for k, v in parse_pairs(metric, "--metric").items()]
    hyperparameters = {k: parse_value(v) for k, v in parse_pairs(hp, "--hp").items()}
    environment = parse_pairs(env, "--env")
    with reported_errors():
        client = get_client(ctx)
        options: dict[str, Any] = {
            "account": account,
            "name": name,
            "output_uri": output_uri,
            "environment": environment,
            "max_runtime_seconds": max_runtime,
            "metric_definitions": metrics,
            "wait": not no_wait,
            "timeout": timeout,
            "quiet": no_wait,  # the record on stdout says all there is
            "client": client,
        }
        call = sdk_jobs.process if processing else sdk_jobs.train
        job = call(
            entry_point,
            source_dir,
            inputs=inputs,
            hyperparameters=hyperparameters,
            instance_type=instance_type,
            **options,
        )
    _emit_job(job, output)
    if job.status in {JobStatus.FAILED, JobStatus.STOPPED}:
        err_console.print(
            f"[red]Error:[/red] {job.kind.value} job {job.name} ended {job.status.value}"
            + (f": {job.failure_reason}" if job.failure_reason else ""),
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


@app.command("ls")
def list_jobs(
    ctx: typer.Context,
    account: AccountOption,
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    name_prefix: Annotated[str | None, typer.Option(help="Only names starting so.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only jobs tagged key=value.")] = None,
    processing: ProcessingOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """List an account's jobs."""
    if tag is not None:
        parse_pairs([tag], "--tag")
    with reported_errors():
        found = list(
            _kind(ctx, processing).iter_all(
                account, status=status, name_prefix=name_prefix, tag=tag, page_size=MAX_PAGE_SIZE
            )
        )
    if output is OutputFormat.JSON:
        emit_json(found)
        return
    kind = "Processing" if processing else "Training"
    emit_table([_Row.of(j) for j in found], COLUMNS, output, title=f"{kind} jobs in {account}")


@app.command("describe")
def describe_job(
    ctx: typer.Context,
    name: NameArg,
    account: AccountOption,
    processing: ProcessingOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Show a job's status, failure, status history and output URIs."""
    with reported_errors():
        job = _kind(ctx, processing).get(account, name)
    _emit_job(job, output)


@app.command("stop")
def stop_job(
    ctx: typer.Context,
    name: NameArg,
    account: AccountOption,
    processing: ProcessingOption = False,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Stop a job: a queued one at once, a running one through its runner."""
    kind = "processing" if processing else "training"
    confirm_or_abort(f"stop {kind} job {name} in {account}", yes=yes)
    with reported_errors():
        job = _kind(ctx, processing).stop(account, name)
    _emit_job(job, output)


@app.command("logs")
def job_logs(
    ctx: typer.Context,
    name: NameArg,
    account: AccountOption,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output until the job ends.")
    ] = False,
    attempt: Annotated[
        int | None, typer.Option(min=1, help="Only this attempt (default: all, in order).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Start at this position (attempt:offset).")
    ] = None,
    processing: ProcessingOption = False,
) -> None:
    """Print a job's log (standard output and error of each attempt); secrets show as ***."""
    with reported_errors():
        try:
            for text in _kind(ctx, processing).logs(
                account, name, follow=follow, attempt=attempt, since=since
            ):
                typer.echo(text, nl=False)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


class _Series(BaseModel):
    metric: str
    points: int
    last: float
    last_step: int | None
    minimum: float
    maximum: float

    @classmethod
    def of(cls, metric: str, points: list[MetricPoint]) -> _Series:
        values = [p.value for p in points if not math.isnan(p.value)] or [math.nan]
        return cls(
            metric=metric,
            points=len(points),
            last=points[-1].value,
            last_step=points[-1].step,
            minimum=min(values),
            maximum=max(values),
        )


@app.command("metrics")
def job_metrics(
    ctx: typer.Context,
    name: NameArg,
    account: AccountOption,
    metric: Annotated[str | None, typer.Option(help="Only this metric.")] = None,
    processing: ProcessingOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Show a job's metrics: a summary per series, or every point with -o json."""
    with reported_errors():
        found: JobMetrics = _kind(ctx, processing).metrics(account, name, metric=metric)
    if output is OutputFormat.JSON:
        emit_json(found)
        return
    rows = [_Series.of(m, points) for m, points in sorted(found.series.items()) if points]
    emit_table(rows, SERIES_COLUMNS, output, title=f"Metrics of {name}")


SERIES_COLUMNS = (
    ("metric", "metric"),
    ("points", "points"),
    ("last", "last"),
    ("last step", "last_step"),
    ("min", "minimum"),
    ("max", "maximum"),
)


class _Summary(BaseModel):
    name: str
    krn: str
    status: JobStatus
    secondary_status: str | None
    failure_reason: str | None
    failure_kind: str | None
    attempt: int
    instance_type: str
    entry_point: str
    source_uri: str
    inputs: dict[str, str]
    output_uri: str
    model_artifact_uri: str | None
    output_artifact_uri: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    billable_seconds: float | None
    cost: float | None


def _emit_job(job: Job, output: OutputFormat) -> None:
    """A job as JSON, or as key/value lines followed by its status transitions."""
    if output is OutputFormat.JSON:
        emit_json(job)
        return
    spec = job.spec
    summary = _Summary(
        name=job.name,
        krn=job.krn,
        status=job.status,
        secondary_status=job.secondary_status,
        failure_reason=job.failure_reason,
        failure_kind=job.failure_kind.value if job.failure_kind else None,
        attempt=job.attempt,
        instance_type=spec.instance_type,
        entry_point=spec.code.entry_point,
        source_uri=spec.code.source_uri,
        inputs=spec.inputs,
        output_uri=spec.output_uri,
        model_artifact_uri=job.model_artifact_uri,
        output_artifact_uri=job.output_artifact_uri,
        created_at=job.created_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        billable_seconds=job.billable_seconds,
        cost=job.cost,
    )
    emit_record(summary, output)
    table = Table(title="Transitions")
    for header in ("status", "at", "message"):
        table.add_column(header)
    for step in job.transitions:
        table.add_row(step.status.value, step.at.isoformat(timespec="seconds"), step.message or "")
    console.print(table)
