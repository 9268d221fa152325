"""`ketch server`, `ketch init` and `ketch db upgrade`: the commands that run server code.

Server modules are imported inside the functions only, so the rest of the CLI stays
a thin client that never loads FastAPI or SQLAlchemy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.panel import Panel

if TYPE_CHECKING:
    from ketch.core.settings import KetchSettings
    from ketch.server.bootstrap import BootstrapResult

err_console = Console(stderr=True)
db_app = typer.Typer(help="Metadata store maintenance.", no_args_is_help=True)


def _settings(**server: object) -> KetchSettings:
    from pydantic import ValidationError

    from ketch.core.settings import load_settings

    try:
        settings = load_settings()
        if server:
            settings.server = settings.server.model_copy(update=server)
        return settings
    except ValidationError as exc:
        err_console.print(f"[red]Error:[/red] invalid configuration: {exc}")
        raise typer.Exit(2) from exc


def _announce(result: BootstrapResult, url: str) -> None:
    """Show first-start credentials once and sign the CLI in with them."""
    from ketch.sdk.credentials import save_credentials

    stored = save_credentials(url=url, token=result.token)
    err_console.print(
        Panel.fit(
            f"Organisation [bold]{result.organization}[/bold] created.\n"
            f"Admin user:     [bold]{result.username}[/bold]\n"
            f"Admin password: [bold]{result.password}[/bold]\n"
            f"Shown once; also kept (mode 0600) in {result.credentials_file}\n"
            f"The CLI is signed in as {result.username} ({stored}).",
            title="ketch: first start",
        )
    )


def server_command(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8765).")] = None,
) -> None:
    """Run the ketch server (API and controllers) on the embedded defaults."""
    from ketch.server.main import run_server, server_url

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = _settings(**overrides)
    url = server_url(settings)
    err_console.print(f"ketch server on {url} (home {settings.home})")
    run_server(settings, on_bootstrap=lambda result: _announce(result, url))


def init_command(
    org_name: Annotated[str, typer.Option("--org-name", help="Organisation name.")] = "main",
    admin: Annotated[str, typer.Option(help="User name of the first admin.")] = "admin",
) -> None:
    """Create the database schema, the organisation, its root OU and the first admin."""
    from ketch.core.errors import KetchError
    from ketch.server.bootstrap import bootstrap
    from ketch.server.context import build_context
    from ketch.server.main import server_url

    settings = _settings()
    context = build_context(settings)
    try:
        result = bootstrap(context, org_name=org_name, admin_username=admin)
    except KetchError as exc:
        err_console.print(f"[red]Error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        context.close()
    if result is None:
        err_console.print(f"The organisation already exists in {_where(settings)}; nothing to do.")
        return
    _announce(result, server_url(settings))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the metadata store's schema to this version of ketch."""
    from ketch.server.context import build_context
    from ketch.store.migrations import current_revision, head_revision, upgrade

    settings = _settings()
    context = build_context(settings, migrate=False)
    try:
        before = current_revision(context.engine)
        upgrade(context.engine)
        after = current_revision(context.engine)
    finally:
        context.close()
    target = head_revision()
    if before == after:
        sys.stdout.write(f"database already at revision {after} (head {target})\n")
    else:
        sys.stdout.write(f"database upgraded from {before or 'empty'} to {after}\n")


def _where(settings: KetchSettings) -> str | Path:
    url = settings.resolved_database_url()
    return settings.home / "ketch.db" if url.startswith("sqlite") else "the configured database"
