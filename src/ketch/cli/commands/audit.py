"""`ketch audit`: list, export and verify the audit trail."""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from ketch.cli._client import get_client, reported_errors
from ketch.cli.output import OutputFormat, OutputOption, console, emit_json, emit_table, err_console
from ketch.schemas.audit import AuditOutcome
from ketch.schemas.common import MAX_PAGE_SIZE
from ketch.sdk.resources.audit import AuditFilters

app = typer.Typer(
    help="The audit trail: every change and every denial, hash-chained and signed.",
    no_args_is_help=True,
)

COLUMNS = (
    ("seq", "seq"),
    ("time", "time"),
    ("principal", "principal"),
    ("account", "account"),
    ("action", "action"),
    ("resource", "resource"),
    ("outcome", "outcome"),
    ("error", "error_code"),
)
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_TIME_HELP = "ISO 8601 (local time unless a zone is given) or a time ago: 30m, 2h, 7d."

AccountOption = Annotated[str | None, typer.Option(help="Only records of this account.")]
PrincipalOption = Annotated[str | None, typer.Option(help="Only this principal (user name).")]
ActionOption = Annotated[str | None, typer.Option(help="Only this action, e.g. CreateAccount.")]
OutcomeOption = Annotated[AuditOutcome | None, typer.Option(help="success, denied or failed.")]
SinceOption = Annotated[str | None, typer.Option(help=f"From this time on. {_TIME_HELP}")]
UntilOption = Annotated[str | None, typer.Option(help=f"Before this time. {_TIME_HELP}")]


def _when(value: str | None, option: str) -> datetime | None:
    """A time from the command line: an ISO 8601 timestamp or a duration ago."""
    if value is None:
        return None
    ago = _AGO.match(value.strip())
    if ago:
        delta = timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
        return datetime.now().astimezone() - delta
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither an ISO 8601 time nor a duration like 30m, 2h, 7d",
            param_hint=option,
        )
    return parsed if parsed.tzinfo else parsed.astimezone()


def _filters(
    account: str | None,
    principal: str | None,
    action: str | None,
    outcome: AuditOutcome | None,
    since: str | None,
    until: str | None,
    *,
    newest_first: bool = False,
) -> AuditFilters:
    """The options ``ls`` and ``export`` share, as SDK filters."""
    return AuditFilters(
        account=account,
        principal=principal,
        action=action,
        outcome=outcome,
        start_time=_when(since, "--since"),
        end_time=_when(until, "--until"),
        newest_first=newest_first,
    )


@app.command("ls")
def list_events(
    ctx: typer.Context,
    account: AccountOption = None,
    principal: PrincipalOption = None,
    action: ActionOption = None,
    outcome: OutcomeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many records.")] = 50,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """List audit records, newest first."""
    filters = _filters(account, principal, action, outcome, since, until, newest_first=True)
    with reported_errors():
        records = get_client(ctx).audit.iter_all(**filters, page_size=min(limit, MAX_PAGE_SIZE))
        events = list(itertools.islice(records, limit))
    emit_table(events, COLUMNS, output, title="Audit records")


@contextmanager
def _destination(file: str) -> Iterator[TextIO]:
    """stdout for ``-``; otherwise a file that appears only once the export is complete."""
    if file == "-":
        yield sys.stdout
        return
    path = Path(file)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            yield handle
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@app.command("export")
def export_events(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="JSON Lines file; '-' for stdout.")],
    account: AccountOption = None,
    principal: PrincipalOption = None,
    action: ActionOption = None,
    outcome: OutcomeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Write every matching record, oldest first, as JSON Lines (one record a line)."""
    filters = _filters(account, principal, action, outcome, since, until)
    count = 0
    progress = Progress(
        SpinnerColumn(), TextColumn("exported {task.completed} records"), console=err_console
    )
    with reported_errors(), progress, _destination(file) as out:
        task = progress.add_task("export", total=None)
        for event in get_client(ctx).audit.iter_all(**filters, page_size=MAX_PAGE_SIZE):
            out.write(json.dumps(event.model_dump(mode="json"), ensure_ascii=False) + "\n")
            count += 1
            progress.update(task, completed=count)
    where = "stdout" if file == "-" else file
    err_console.print(f"exported {count} audit records to {where}", highlight=False)


@app.command("verify")
def verify_trail(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """Check the chain, the signed digests and their files; exit 1 on any finding."""
    with reported_errors():
        report = get_client(ctx).audit.verify()
    if output is OutputFormat.JSON:
        emit_json(report)
    elif report.ok:
        console.print(
            f"OK: {report.records_checked} records and {report.digests_checked} signed "
            f"digests verified (newest record {report.newest_seq})",
            highlight=False,
        )
    else:
        console.print(
            f"[red]FAILED[/red]: {len(report.findings)} problems in the audit trail",
            highlight=False,
        )
        for finding in report.findings:
            console.print(f"- {finding.message}", highlight=False, soft_wrap=True, markup=False)
    if not report.ok:
        raise typer.Exit(1)
