"""`ketch assignments`: who holds which permission set, and where."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import BaseModel

from ketch.cli._client import get_client, reported_errors
from ketch.cli._input import YesOption, confirm_or_abort
from ketch.cli.output import (
    OutputFormat,
    OutputOption,
    console,
    emit_json,
    emit_record,
    emit_table,
)
from ketch.schemas.iam import Assignment

app = typer.Typer(
    help="Assignments: a permission set for a user or group on an account or an OU "
    "(and every account below it).",
    no_args_is_help=True,
)

COLUMNS = (
    ("id", "id"),
    ("permission set", "permission_set"),
    ("principal", "principal"),
    ("target", "target"),
)


class _Row(BaseModel):
    """An assignment as a table row: ``user alice`` on ``ou teams/fraud``."""

    id: str
    permission_set: str
    principal: str
    target: str

    @classmethod
    def of(cls, assignment: Assignment) -> _Row:
        target = assignment.target or "(root)"
        return cls(
            id=assignment.id,
            permission_set=assignment.permission_set,
            principal=f"{assignment.principal_type} {assignment.principal}",
            target=f"{assignment.target_type} {target}",
        )


IdArg = Annotated[str, typer.Argument(help="Assignment id (see `ketch assignments ls`).")]
UserOption = Annotated[str | None, typer.Option("--user", help="A user.")]
GroupOption = Annotated[str | None, typer.Option("--group", help="A group.")]


def _one(option_values: dict[str, str | None]) -> tuple[str, str] | None:
    """The one option given (its name without dashes, and its value); None if none was."""
    given = [(name, value) for name, value in option_values.items() if value is not None]
    if len(given) > 1:
        raise typer.BadParameter(f"give only one of {' and '.join(option_values)}")
    return (given[0][0].lstrip("-"), given[0][1]) if given else None


@app.command("create")
def create_assignment(
    ctx: typer.Context,
    permission_set: Annotated[
        str, typer.Option("--permission-set", help="The permission set to grant.")
    ],
    user: UserOption = None,
    group: GroupOption = None,
    account: Annotated[str | None, typer.Option("--account", help="An account id.")] = None,
    ou: Annotated[
        str | None,
        typer.Option("--ou", help="An OU path (every account below it); '' is the root."),
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Grant a permission set to a user or group on an account or an OU (and below)."""
    principal = _one({"--user": user, "--group": group})
    target = _one({"--account": account, "--ou": ou})
    if principal is None:
        raise typer.BadParameter("give --user or --group")
    if target is None:
        raise typer.BadParameter("give --account or --ou")
    with reported_errors():
        created = get_client(ctx).assignments.create(
            permission_set=permission_set,
            principal_type=principal[0],
            principal=principal[1],
            target_type=target[0],
            target=target[1],
        )
    emit_record(created, output)


@app.command("ls")
def list_assignments(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only those of this user.")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Only those of this group.")] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """List assignments (all, or those made directly to --user or --group)."""
    principal = _one({"--user": user, "--group": group})
    with reported_errors():
        found = list(
            get_client(ctx).assignments.iter_all(
                principal_type=principal[0] if principal else None,
                principal=principal[1] if principal else None,
            )
        )
    if output is OutputFormat.JSON:
        emit_json(found)
    else:
        emit_table([_Row.of(a) for a in found], COLUMNS, output, title="Assignments", whole=("id",))


@app.command("show")
def show_assignment(
    ctx: typer.Context, assignment_id: IdArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """Describe one assignment."""
    with reported_errors():
        found = get_client(ctx).assignments.get(assignment_id)
    emit_record(found, output)


@app.command("rm")
def delete_assignment(
    ctx: typer.Context,
    assignment_id: IdArg,
    yes: YesOption = False,
) -> None:
    """Delete an assignment: its principal loses what it granted there."""
    confirm_or_abort(f"delete assignment {assignment_id}", yes=yes)
    with reported_errors():
        get_client(ctx).assignments.delete(assignment_id)
    console.print(f"deleted assignment {assignment_id}", highlight=False)
