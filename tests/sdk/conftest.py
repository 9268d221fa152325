"""SDK tests run with no ambient configuration: an empty KETCH_HOME, no KETCH_URL/TOKEN."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def ketch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh KETCH_HOME, so no test reads or writes the real ``~/.ketch``."""
    home = tmp_path / "client-home"
    monkeypatch.setenv("KETCH_HOME", str(home))
    monkeypatch.delenv("KETCH_URL", raising=False)
    monkeypatch.delenv("KETCH_TOKEN", raising=False)
    return home
