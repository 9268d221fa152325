"""`ketch permission-sets`: Cedar templates that assignments grant."""

from __future__ import annotations

from typing import Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli._input import YesOption, confirm_or_abort, read_text_file
from ketch.cli.output import OutputFormat, OutputOption, console, emit_record, emit_table

app = typer.Typer(
    help="Permission sets: Cedar permit templates "
    "('principal in ?principal', 'resource in ?resource') that assignments grant.",
    no_args_is_help=True,
)

COLUMNS = (
    ("name", "name"),
    ("built-in", "builtin"),
    ("allowed from", "allowed_cidrs"),
    ("description", "description"),
)
NameArg = Annotated[str, typer.Argument(help="Permission set name, such as DataScientist.")]
CidrOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-cidr",
        help="Only grant to requests from this range (CIDR, e.g. 10.8.0.0/16); repeat for more.",
    ),
]
DescriptionOption = Annotated[str | None, typer.Option(help="What the set allows.")]


@app.command("create")
def create_permission_set(
    ctx: typer.Context,
    name: NameArg,
    policy_file: Annotated[
        str, typer.Option("--policy-file", help="File of Cedar templates; '-' for stdin.")
    ],
    description: DescriptionOption = None,
    allowed_cidr: CidrOption = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create a permission set from a file of Cedar permit templates."""
    policy_text = read_text_file(policy_file, option="--policy-file")
    with reported_errors():
        created = get_client(ctx).permission_sets.create(
            name,
            policy_text=policy_text,
            description=description or "",
            allowed_cidrs=allowed_cidr,
        )
    emit_record(created, output)


@app.command("ls")
def list_permission_sets(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """List permission sets, built-in ones included."""
    with reported_errors():
        sets = list(get_client(ctx).permission_sets.iter_all())
    emit_table(sets, COLUMNS, output, title="Permission sets ('allowed from' empty: anywhere)")


@app.command("show")
def show_permission_set(
    ctx: typer.Context, name: NameArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """Describe one permission set, with its policy text."""
    with reported_errors():
        found = get_client(ctx).permission_sets.get(name)
    emit_record(found, output)


@app.command("update")
def update_permission_set(
    ctx: typer.Context,
    name: NameArg,
    policy_file: Annotated[
        str | None, typer.Option("--policy-file", help="New Cedar templates; '-' for stdin.")
    ] = None,
    description: DescriptionOption = None,
    allowed_cidr: CidrOption = None,
    any_address: Annotated[
        bool, typer.Option("--any-address", help="Lift the --allowed-cidr limit.")
    ] = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Change a custom permission set's policy, description or address limit."""
    if allowed_cidr and any_address:
        raise typer.BadParameter("give --allowed-cidr or --any-address, not both")
    policy_text = read_text_file(policy_file, option="--policy-file") if policy_file else None
    with reported_errors():
        updated = get_client(ctx).permission_sets.update(
            name,
            policy_text=policy_text,
            description=description,
            allowed_cidrs=allowed_cidr,
            clear_allowed_cidrs=any_address,
        )
    emit_record(updated, output)


@app.command("rm")
def delete_permission_set(
    ctx: typer.Context,
    name: NameArg,
    yes: YesOption = False,
) -> None:
    """Delete a custom permission set that is no longer assigned."""
    confirm_or_abort(f"delete permission set {name}", yes=yes)
    with reported_errors():
        get_client(ctx).permission_sets.delete(name)
    console.print(f"deleted permission set {name}", highlight=False)
