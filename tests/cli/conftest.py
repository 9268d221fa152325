"""CLI tests: an empty KETCH_HOME, no KETCH_URL/KETCH_TOKEN, and a runner on the SDK client.

Commands get the real SDK client (signed in as the admin, on the in-process app) through
the Typer context object, exactly as ``ketch.cli._client.get_client`` expects.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.results import Run
from ketch import Client
from ketch.cli.main import app


@pytest.fixture(autouse=True)
def ketch_home(ketch_home: Path) -> Path:
    """The shared :func:`ketch_home`, for every CLI test."""
    return ketch_home


@pytest.fixture
def run(client: Client) -> Run:
    """``run("accounts", "ls", input=None)``: ``ketch accounts ls`` with the admin client."""

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), obj=lambda: client, input=input)

    return invoke
