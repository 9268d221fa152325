"""SDK tests run with no ambient configuration: an empty KETCH_HOME, no KETCH_URL/TOKEN."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def ketch_home(ketch_home: Path) -> Path:
    """The shared :func:`ketch_home`, for every SDK test."""
    return ketch_home
