"""`ketch groups`: groups of users, and their members."""

from __future__ import annotations

from typing import Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli._input import YesOption, confirm_or_abort
from ketch.cli.output import OutputFormat, OutputOption, console, emit_record, emit_table

app = typer.Typer(
    help="Groups: assignments to a group apply to each of its members.", no_args_is_help=True
)

COLUMNS = (("name", "name"), ("description", "description"), ("members", "members"))
GroupArg = Annotated[str, typer.Argument(help="Group name, such as release.")]
UserArg = Annotated[str, typer.Argument(help="User name.")]


@app.command("create")
def create_group(
    ctx: typer.Context,
    name: GroupArg,
    description: Annotated[str, typer.Option(help="What the group is for.")] = "",
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create a group."""
    with reported_errors():
        group = get_client(ctx).groups.create(name, description=description)
    emit_record(group, output)


@app.command("ls")
def list_groups(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """List groups and their members."""
    with reported_errors():
        groups = list(get_client(ctx).groups.iter_all())
    emit_table(groups, COLUMNS, output, title="Groups")


@app.command("show")
def show_group(
    ctx: typer.Context, name: GroupArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """Describe one group."""
    with reported_errors():
        group = get_client(ctx).groups.get(name)
    emit_record(group, output)


@app.command("rm")
def delete_group(
    ctx: typer.Context,
    name: GroupArg,
    yes: YesOption = False,
) -> None:
    """Delete a group and its assignments (its members stay). Cannot be undone."""
    confirm_or_abort(f"delete group {name} and its assignments", yes=yes)
    with reported_errors():
        get_client(ctx).groups.delete(name)
    console.print(f"deleted group {name}", highlight=False)


@app.command("add-member")
def add_member(
    ctx: typer.Context, group: GroupArg, user: UserArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """Add a user to a group (adding a member again changes nothing)."""
    with reported_errors():
        changed = get_client(ctx).groups.add_member(group, user)
    emit_record(changed, output)


@app.command("remove-member")
def remove_member(
    ctx: typer.Context, group: GroupArg, user: UserArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """Remove a user from a group."""
    with reported_errors():
        changed = get_client(ctx).groups.remove_member(group, user)
    emit_record(changed, output)
