"""Real components a test needs: skip where they are missing, fail where they must exist.

Under the test command (``KETCH_TEST_<NAME>=required``) and in CI a missing PostgreSQL
or OpenID provider is a failure, never a quiet skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def required(name: str) -> bool:
    """Whether component ``name`` (``POSTGRES``, ``OIDC``) must be present."""
    return os.environ.get(f"KETCH_TEST_{name}") == "required" or bool(os.environ.get("CI"))


def skip_or_fail(name: str, message: str) -> NoReturn:
    """Fail if component ``name`` is required here, else skip, with ``message``."""
    if required(name):
        pytest.fail(message)
    pytest.skip(message)
