"""`ketch tokens`: API tokens for scripts and CI, shown once, expiring, revocable."""

from __future__ import annotations

from datetime import UTC, datetime
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
    err_console,
)
from ketch.schemas.iam import Token

app = typer.Typer(
    help="API tokens: the secret is shown once at creation, stored hashed, and expires.",
    no_args_is_help=True,
)

COLUMNS = (
    ("id", "id"),
    ("name", "name"),
    ("status", "status"),
    ("expires", "expires"),
    ("last used", "last_used"),
    ("limits", "limits"),
)


class _Row(BaseModel):
    """A token as a table row: its state in a word, dates without times."""

    id: str
    name: str
    status: str
    expires: str
    last_used: str
    limits: str

    @classmethod
    def of(cls, token: Token, now: datetime) -> _Row:
        expired = token.expires_at is not None and token.expires_at <= now
        status = "revoked" if token.revoked_at else "expired" if expired else "active"
        limits = [
            *(["read-only"] if token.read_only else []),
            *(
                [", ".join(token.account_ids) or "no account"]
                if token.account_ids is not None
                else []
            ),
        ]
        return cls(
            id=token.id,
            name=token.name,
            status=status,
            expires=token.expires_at.date().isoformat() if token.expires_at else "never",
            last_used=token.last_used_at.date().isoformat() if token.last_used_at else "",
            limits="; ".join(limits),
        )


@app.command(
    "create",
    epilog="Only the secret goes to stdout, so TOKEN=$(ketch tokens create) works; the "
    "details and the warning go to stderr. With --output json, stdout is the whole "
    "record and the secret is its 'token'.",
)
def create_token(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the token is for, e.g. ci-fraud.")] = "cli",
    ttl_days: Annotated[int, typer.Option(help="Days until it expires (1 to 3650).")] = 30,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Only describe and list; every change is denied.")
    ] = False,
    account: Annotated[
        list[str] | None,
        typer.Option("--account", help="Only act in this account; repeat for more."),
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create a token for yourself and print its secret, this once, on stdout."""
    with reported_errors():
        issued = get_client(ctx).tokens.create(
            name=name, ttl_days=ttl_days, read_only=read_only, account_ids=account
        )
    if output is OutputFormat.JSON:
        emit_json(issued)
    else:
        console.print(issued.token, highlight=False, markup=False, soft_wrap=True)
    expires = issued.expires_at.isoformat(timespec="minutes") if issued.expires_at else "never"
    limits = [
        *(["read-only"] if issued.read_only else []),
        *([f"accounts {', '.join(issued.account_ids)}"] if issued.account_ids is not None else []),
    ]
    err_console.print(
        f"Created token {issued.prefix} (id {issued.token_id}) for {issued.principal.name}, "
        f"expires {expires}" + (f", {'; '.join(limits)}" if limits else "") + ".",
        highlight=False,
        soft_wrap=True,
    )
    err_console.print(
        "[yellow]Warning:[/yellow] copy the secret now; it will not be shown again.",
        highlight=False,
    )


@app.command("ls")
def list_tokens(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Option(help="Another user's tokens (needs admin rights).")
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """List your tokens (or --user's); secrets are never shown again."""
    with reported_errors():
        tokens = list(get_client(ctx).tokens.iter_all(user=user))
    if output is OutputFormat.JSON:
        emit_json(tokens)
        return
    now = datetime.now(UTC)
    title = f"API tokens of {user}" if user else "Your API tokens"
    emit_table([_Row.of(t, now) for t in tokens], COLUMNS, output, title=title, whole=("id",))


@app.command("revoke")
def revoke_token(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="Token id (see `ketch tokens ls`).")],
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Revoke a token at once: requests that present it are refused from now on."""
    confirm_or_abort(f"revoke token {token_id}", yes=yes)
    with reported_errors():
        token = get_client(ctx).tokens.revoke(token_id)
    emit_record(token, output)
