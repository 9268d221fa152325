"""CLI tests: an empty KETCH_HOME, no KETCH_URL/KETCH_TOKEN, and a runner on the SDK client.

Commands get the real SDK client (signed in as the admin, on the in-process app) through
the Typer context object, exactly as ``ketch.cli._client.get_client`` expects.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli.results import Run
from ketch import Client
from ketch.cli.main import app


@pytest.fixture(autouse=True)
def ketch_home(ketch_home: Path) -> Path:
    """The shared :func:`ketch_home`, for every CLI test."""
    return ketch_home


class TerminalRunner(CliRunner):
    """A runner whose stdin says it is a terminal, so prompts and confirmations ask.

    The runner's stdin is never a terminal; this sets ``isatty`` on that stream object
    (the runner's own, not ketch code) for the duration of the run.
    """

    @contextmanager
    def isolation(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with super().isolation(*args, **kwargs) as streams:
            sys.stdin.isatty = lambda: True  # type: ignore[method-assign]
            yield streams


@pytest.fixture
def run(client: Client) -> Run:
    """``run("accounts", "ls", input=None)``: ``ketch accounts ls`` with the admin client.

    ``terminal=True`` makes stdin a terminal (``input`` is then what is typed).
    """

    def invoke(*args: str, input: str | None = None, terminal: bool = False) -> Result:
        runner = TerminalRunner() if terminal else CliRunner()
        return runner.invoke(app, list(args), obj=lambda: client, input=input)

    return invoke
