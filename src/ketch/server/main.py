"""`ketch server`: migrate, bootstrap on first start, then serve the API with uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Callable

import uvicorn

from ketch.api import create_app
from ketch.audit import DigestWriter
from ketch.core.logging import configure_logging
from ketch.core.settings import KetchSettings
from ketch.server.bootstrap import BootstrapResult, ensure_bootstrapped
from ketch.server.context import build_context
from ketch.server.jobs import job_runner

logger = logging.getLogger(__name__)


def run_server(
    settings: KetchSettings,
    *,
    on_bootstrap: Callable[[BootstrapResult], None] | None = None,
) -> None:
    """Serve until interrupted. ``on_bootstrap`` sees first-start credentials once."""
    configure_logging(settings.log_level)
    context = build_context(settings)
    try:
        result = ensure_bootstrapped(context)
        if result is not None and on_bootstrap is not None:
            on_bootstrap(result)
        app = create_app(context)
        config = uvicorn.Config(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_level=settings.log_level.lower(),
            access_log=False,
            server_header=False,
            proxy_headers=False,
        )
        with DigestWriter(context.uow, context.audit).running(), job_runner(context):
            uvicorn.Server(config).run()
    finally:
        context.close()


def server_url(settings: KetchSettings) -> str:
    """The loopback-or-configured URL clients should use for this server."""
    if settings.server.public_url:
        return settings.server.public_url.rstrip("/")
    host = settings.server.host
    if host in {"0.0.0.0", "::"}:  # noqa: S104 (compared, not bound)
        host = "127.0.0.1"
    return (
        f"http://[{host}]:{settings.server.port}"
        if ":" in host
        else (f"http://{host}:{settings.server.port}")
    )
