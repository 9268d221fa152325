"""Live-server fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.live import LiveServer


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(home=tmp_path / "home").start()
    try:
        yield server
    finally:
        server.stop()
