"""`ketch login` and `ketch whoami`."""

from __future__ import annotations

from typing import Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli.output import OutputFormat, OutputOption, console, emit_json, err_console


def login_command(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="Server URL (default: KETCH_URL or stored).")
    ] = None,
    username: Annotated[str | None, typer.Option(help="User name.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (prompted, hidden, when omitted).")
    ] = None,
) -> None:
    """Sign in with a password and store the API token (mode 0600) for the CLI and SDK."""
    from ketch.sdk import Client
    from ketch.sdk.credentials import save_credentials

    name = username or typer.prompt("Username")
    secret = password or typer.prompt("Password", hide_input=True)
    with reported_errors():
        factory = ctx.find_root().obj
        client = factory() if factory is not None else Client(url=url, token=None)
        issued = client.login(name, secret)
    path = save_credentials(url=client.url, token=issued.token)
    expires = issued.expires_at.isoformat(timespec="minutes") if issued.expires_at else "never"
    err_console.print(
        f"Signed in to {client.url} as {issued.principal.name}; token "
        f"{issued.prefix} (expires {expires}) stored in {path}"
    )


def whoami_command(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """Show the signed-in principal and organisation."""
    with reported_errors():
        client = get_client(ctx)
        me = client.whoami()
    if output is OutputFormat.JSON:
        emit_json(me)
        return
    role = "organisation admin" if me.is_org_admin else "member"
    console.print(
        f"{me.principal.name} ({me.principal.krn}), {role} of organisation "
        f"{me.organization}, at {client.url}"
    )
    console.print(f"groups: {', '.join(me.groups) or '(none)'}")
    limits = [
        *(["read-only token"] if me.token_read_only else []),
        *(
            [f"token limited to {', '.join(me.token_account_ids)}"]
            if me.token_account_ids is not None
            else []
        ),
    ]
    if limits:
        console.print("; ".join(limits))
    if not me.reach:
        console.print("no permission set is assigned to you yet")
    for reach in me.reach:
        target = reach.target or "(root)"
        console.print(
            f"  {reach.permission_set} on {reach.target_type} {target} (via {reach.via})",
            highlight=False,
        )
