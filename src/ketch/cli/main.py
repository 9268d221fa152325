"""The `ketch` command: one Typer sub-app per command group."""

from __future__ import annotations

import typer

from ketch.cli.commands import accounts, audit, auth, ous, server

app = typer.Typer(
    name="ketch",
    help="Ketch: a self-hosted ML platform for many teams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("server")(server.server_command)
app.command("init")(server.init_command)
app.add_typer(server.db_app, name="db")
app.command("login")(auth.login_command)
app.command("whoami")(auth.whoami_command)
app.add_typer(ous.app, name="ous")
app.add_typer(accounts.app, name="accounts")
app.add_typer(audit.app, name="audit")


def main() -> None:
    app()
