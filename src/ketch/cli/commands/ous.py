"""`ketch ous`: the tree of organisational units, addressed by path (``teams/fraud``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli.output import OutputFormat, OutputOption, console, emit_record, emit_table

app = typer.Typer(
    help="Organisational units (OUs), addressed by path such as teams/fraud.", no_args_is_help=True
)

COLUMNS = (("path", "path"), ("name", "name"), ("id", "id"), ("created", "created_at"))
PathArg = Annotated[str, typer.Argument(help="OU path, such as teams/fraud.")]


@app.command("ls")
def list_ous(
    ctx: typer.Context,
    parent: Annotated[str | None, typer.Option(help="Only the children of this OU.")] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """List OUs (all, or the children of --parent)."""
    with reported_errors():
        ous = sorted(get_client(ctx).ous.iter_all(parent=parent), key=lambda ou: ou.path)
    emit_table(ous, COLUMNS, output, title="OUs ('' is the root)")


@app.command("create")
def create_ou(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the new OU.")],
    parent: Annotated[str, typer.Option(help="Path of the parent OU (default: the root).")] = "",
    create_missing_parents: Annotated[
        bool, typer.Option("--create-missing-parents", help="Create missing parent OUs.")
    ] = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create an OU."""
    with reported_errors():
        ou = get_client(ctx).ous.create(
            name, parent=parent, create_missing_parents=create_missing_parents
        )
    emit_record(ou, output)


@app.command("show")
def show_ou(ctx: typer.Context, path: PathArg, output: OutputOption = OutputFormat.TABLE) -> None:
    """Describe one OU."""
    with reported_errors():
        ou = get_client(ctx).ous.get_by_path(path)
    emit_record(ou, output)


@app.command("rename")
def rename_ou(
    ctx: typer.Context,
    path: PathArg,
    new_name: Annotated[str, typer.Argument(help="The new name.")],
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Rename an OU (its accounts and children follow)."""
    with reported_errors():
        client = get_client(ctx)
        ou = client.ous.update(client.ous.get_by_path(path).id, name=new_name)
    emit_record(ou, output)


@app.command("move")
def move_ou(
    ctx: typer.Context,
    path: PathArg,
    new_parent: Annotated[str, typer.Argument(help="Path of the new parent ('' for the root).")],
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Move an OU below another OU."""
    with reported_errors():
        client = get_client(ctx)
        ou = client.ous.update(client.ous.get_by_path(path).id, parent=new_parent)
    emit_record(ou, output)


@app.command("rm")
def delete_ou(ctx: typer.Context, path: PathArg) -> None:
    """Delete an empty OU (no child OUs, no accounts)."""
    with reported_errors():
        client = get_client(ctx)
        client.ous.delete(client.ous.get_by_path(path).id)
    console.print(f"deleted OU {path}")
