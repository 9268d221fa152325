"""How commands get their SDK client, and how SDK errors become exit codes.

Tests inject a client factory as the Typer context object (``obj=lambda: client``);
otherwise ``ketch.Client()`` resolves the URL and token from the environment or the
stored credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from ketch.cli.output import err_console
from ketch.core.errors import KetchError

if TYPE_CHECKING:
    from ketch.sdk import Client


def get_client(ctx: typer.Context) -> Client:
    factory: Callable[[], Client] | None = ctx.find_root().obj
    if factory is not None:
        return factory()
    from ketch.sdk import Client

    return Client()


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a :class:`KetchError` into ``Error: ...`` on stderr and exit code 1."""
    try:
        yield
    except KetchError as exc:
        request_id = getattr(exc, "request_id", None)
        suffix = f" [{exc.code.value}" + (f", request {request_id}]" if request_id else "]")
        err_console.print(
            f"[red]Error:[/red] {exc.message}{suffix}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from exc
