"""`ketch login` (password or single sign-on) and `ketch whoami`."""

from __future__ import annotations

import webbrowser
from typing import TYPE_CHECKING, Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli._loopback import LoopbackListener
from ketch.cli.output import OutputFormat, OutputOption, console, emit_json, err_console
from ketch.core.errors import Unauthenticated, error_from_code

if TYPE_CHECKING:
    from ketch.schemas.iam import TokenIssued
    from ketch.sdk import Client

SSO_TIMEOUT_SECONDS = 300.0


def login_command(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="Server URL (default: KETCH_URL or stored).")
    ] = None,
    username: Annotated[str | None, typer.Option(help="User name.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (prompted, hidden, when omitted).")
    ] = None,
    sso: Annotated[
        bool,
        typer.Option("--sso", help="Sign in through the identity provider, in a browser."),
    ] = False,
    no_browser: Annotated[
        bool,
        typer.Option("--no-browser", help="With --sso: print the sign-in URL, open nothing."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(min=1, help="With --sso: seconds to wait for the browser sign-in."),
    ] = SSO_TIMEOUT_SECONDS,
) -> None:
    """Sign in and store the API token (mode 0600) for the CLI and SDK.

    With a password by default; with --sso through the organisation's identity provider:
    a browser signs in there and comes back to a listener on 127.0.0.1.
    """
    from ketch.sdk import Client

    if sso and (username or password):
        raise typer.BadParameter("--sso signs in through a browser; drop --username/--password")
    name = None if sso else username or typer.prompt("Username")
    secret = None if sso else password or typer.prompt("Password", hide_input=True)
    with reported_errors():
        factory = ctx.find_root().obj
        client = factory() if factory is not None else Client(url=url, token=None)
        if sso:
            issued = _sso_login(client, open_browser=not no_browser, timeout=timeout)
        else:
            assert name is not None and secret is not None
            issued = client.login(name, secret)
    _store(client, issued)


def _sso_login(client: Client, *, open_browser: bool, timeout: float) -> TokenIssued:
    """Start a single sign-on that ends at a loopback listener, wait, trade the code."""
    with LoopbackListener() as listener:
        sign_in_url = client.sso_start_url(cli_redirect=listener.redirect_url)
        if open_browser and webbrowser.open(sign_in_url):
            err_console.print("Your browser was opened to sign in; if it was not, open:")
        else:
            err_console.print("Open this URL in a browser to sign in:")
        err_console.print(sign_in_url, soft_wrap=True, highlight=False, markup=False)
        err_console.print(f"Waiting up to {timeout:.0f} s for the sign-in (Ctrl-C cancels)...")
        params = listener.wait(timeout)
    if params is None:
        raise Unauthenticated(
            f"no sign-in arrived within {timeout:.0f} s; run `ketch login --sso` again"
        )
    if "error" in params:
        raise error_from_code(params["error"], params.get("error_description") or params["error"])
    return client.sso_exchange(params["code"])


def _store(client: Client, issued: TokenIssued) -> None:
    from ketch.sdk.credentials import save_credentials

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
