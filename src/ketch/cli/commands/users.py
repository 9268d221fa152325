"""`ketch users`: local users, and the users single sign-on created."""

from __future__ import annotations

from typing import Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli._input import YesOption, confirm_or_abort, read_secret
from ketch.cli.output import OutputFormat, OutputOption, console, emit_record, emit_table

app = typer.Typer(
    help="Users: who may sign in (with a password or through SSO).", no_args_is_help=True
)

COLUMNS = (
    ("name", "name"),
    ("display name", "display_name"),
    ("email", "email"),
    ("source", "source"),
    ("disabled", "disabled"),
    ("groups", "groups"),
)
NameArg = Annotated[str, typer.Argument(help="User name, such as alice.")]
PasswordStdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]


@app.command("create")
def create_user(
    ctx: typer.Context,
    name: NameArg,
    password: Annotated[
        str | None,
        typer.Option(
            help="The password (visible to other local users in the process list; prefer the "
            "hidden prompt or --password-stdin)."
        ),
    ] = None,
    password_stdin: PasswordStdinOption = False,
    display_name: Annotated[str, typer.Option(help="Human-readable name.")] = "",
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create a local user; the password is prompted for (hidden, twice) unless given."""
    if password is not None and password_stdin:
        raise typer.BadParameter("give --password or --password-stdin, not both")
    secret = password or read_secret(
        from_stdin=password_stdin, prompt="Password", option="--password-stdin"
    )
    with reported_errors():
        user = get_client(ctx).users.create(
            name, password=secret, display_name=display_name, email=email
        )
    emit_record(user, output)


@app.command("ls")
def list_users(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """List users."""
    with reported_errors():
        users = list(get_client(ctx).users.iter_all())
    emit_table(users, COLUMNS, output, title="Users")


@app.command("show")
def show_user(ctx: typer.Context, name: NameArg, output: OutputOption = OutputFormat.TABLE) -> None:
    """Describe one user."""
    with reported_errors():
        user = get_client(ctx).users.get(name)
    emit_record(user, output)


@app.command("update")
def update_user(
    ctx: typer.Context,
    name: NameArg,
    display_name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    email: Annotated[str | None, typer.Option(help="New email address.")] = None,
    disabled: Annotated[
        bool | None,
        typer.Option(
            "--disable/--enable", help="Refuse (or allow again) the user's sign-ins and tokens."
        ),
    ] = None,
    set_password: Annotated[
        bool, typer.Option("--set-password", help="Prompt for a new password (hidden, twice).")
    ] = False,
    password_stdin: PasswordStdinOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Change a user's display name, email, password, or whether it is disabled."""
    password = None
    if set_password or password_stdin:
        password = read_secret(
            from_stdin=password_stdin, prompt="New password", option="--password-stdin"
        )
    with reported_errors():
        user = get_client(ctx).users.update(
            name, display_name=display_name, email=email, disabled=disabled, password=password
        )
    emit_record(user, output)


@app.command("rm")
def delete_user(ctx: typer.Context, name: NameArg, yes: YesOption = False) -> None:
    """Delete a user with its group memberships and assignments. Cannot be undone."""
    confirm_or_abort(f"delete user {name} and its assignments", yes=yes)
    with reported_errors():
        get_client(ctx).users.delete(name)
    console.print(f"deleted user {name}", highlight=False)
