"""The `ketch` command: one Typer sub-app per command group."""

from __future__ import annotations

import typer

from ketch.cli.commands import (
    accounts,
    artifacts,
    assignments,
    audit,
    auth,
    groups,
    guardrails,
    iam,
    jobs,
    network_policy,
    ous,
    permission_sets,
    server,
    tokens,
    users,
)

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
app.add_typer(users.app, name="users")
app.add_typer(groups.app, name="groups")
app.add_typer(tokens.app, name="tokens")
app.add_typer(permission_sets.app, name="permission-sets")
app.add_typer(assignments.app, name="assignments")
app.add_typer(guardrails.app, name="guardrails")
app.add_typer(network_policy.app, name="network-policy")
app.add_typer(iam.app, name="iam")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(jobs.app, name="jobs")


def main() -> None:
    app()
