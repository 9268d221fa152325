"""`ketch accounts`: the isolation boundary of every team and stage."""

from __future__ import annotations

from typing import Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli._input import YesOption, confirm_or_abort, parse_pairs
from ketch.cli.output import OutputFormat, OutputOption, emit_record, emit_table
from ketch.schemas.org import AccountStatus, Stage

app = typer.Typer(
    help="Accounts: one per team and stage (dev, preprod, prod, sandbox, shared).",
    no_args_is_help=True,
)

COLUMNS = (
    ("id", "id"),
    ("stage", "stage"),
    ("status", "status"),
    ("OU", "ou_path"),
    ("name", "display_name"),
    ("tags", "tags"),
)
IdArg = Annotated[str, typer.Argument(help="Account id, such as fraud-dev.")]
TagOption = Annotated[
    list[str] | None, typer.Option("--tag", help="Tag as key=value; repeat for more.")
]


@app.command("ls")
def list_accounts(
    ctx: typer.Context,
    ou: Annotated[str | None, typer.Option(help="Only accounts directly in this OU.")] = None,
    stage: Annotated[Stage | None, typer.Option(help="Only this stage.")] = None,
    status: Annotated[AccountStatus | None, typer.Option(help="active or closed.")] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """List accounts."""
    with reported_errors():
        accounts = list(get_client(ctx).accounts.iter_all(ou=ou, stage=stage, status=status))
    emit_table(accounts, COLUMNS, output, title="Accounts")


@app.command("create")
def create_account(
    ctx: typer.Context,
    account_id: IdArg,
    stage: Annotated[Stage, typer.Option(help="What the account is for.")],
    ou: Annotated[str, typer.Option(help="OU path (default: the root).")] = "",
    display_name: Annotated[str | None, typer.Option(help="Human-readable name.")] = None,
    tag: TagOption = None,
    create_ous: Annotated[
        bool, typer.Option("--create-ous", help="Create the OU path if it does not exist.")
    ] = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create an account in an OU."""
    tags = parse_pairs(tag, "--tag", form="key=value") if tag is not None else None
    with reported_errors():
        account = get_client(ctx).accounts.create(
            account_id,
            stage=stage,
            ou=ou,
            display_name=display_name,
            tags=tags,
            create_missing_ous=create_ous,
        )
    emit_record(account, output)


@app.command("show")
def show_account(
    ctx: typer.Context, account_id: IdArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """Describe one account."""
    with reported_errors():
        account = get_client(ctx).accounts.get(account_id)
    emit_record(account, output)


@app.command("update")
def update_account(
    ctx: typer.Context,
    account_id: IdArg,
    display_name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    stage: Annotated[Stage | None, typer.Option(help="New stage.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Replace the tags (key=value; repeat).")
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Change an account's display name, stage or tags."""
    tags = parse_pairs(tag, "--tag", form="key=value") if tag is not None else None
    with reported_errors():
        account = get_client(ctx).accounts.update(
            account_id, display_name=display_name, stage=stage, tags=tags
        )
    emit_record(account, output)


@app.command("move")
def move_account(
    ctx: typer.Context,
    account_id: IdArg,
    ou: Annotated[str, typer.Option(help="Path of the destination OU.")],
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Move an account to another OU."""
    with reported_errors():
        account = get_client(ctx).accounts.move(account_id, ou=ou)
    emit_record(account, output)


@app.command("close")
def close_account(
    ctx: typer.Context,
    account_id: IdArg,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Close an account: its records stay, new work is refused. Cannot be undone."""
    confirm_or_abort(f"close account {account_id} (this cannot be undone)", yes=yes)
    with reported_errors():
        account = get_client(ctx).accounts.close(account_id)
    emit_record(account, output)
