"""Checks on a CLI run shared by the command tests: JSON on success, ``Error:`` on failure.

Imported as ``cli.results`` (``tests`` is on the path); fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from typer.testing import Result

Run = Callable[..., Result]
"""The ``run`` fixture: ``run("accounts", "ls", input=None, terminal=False)``."""


def json_output(result: Result) -> Any:
    """The command succeeded and wrote one JSON document on stdout and nothing else."""
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)


def failed(result: Result, *fragments: str) -> str:
    """The command failed with ``Error: ...`` on stderr naming ``fragments``, stdout empty.

    Returns stderr.
    """
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    for fragment in fragments:
        assert fragment in result.stderr
    return result.stderr
