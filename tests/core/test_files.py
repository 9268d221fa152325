"""write_private_json: owner-only from the first byte, atomic replacement."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ketch.core.files import write_private_json


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Umask 0, so that only the code's own modes keep the file private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_writes_json_readable_by_the_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "creds" / "credentials.json"
    write_private_json(path, {"url": "http://127.0.0.1:8765", "token": "t", "n": 1})
    assert json.loads(path.read_text()) == {"url": "http://127.0.0.1:8765", "token": "t", "n": 1}
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700


def test_replaces_an_existing_file_and_tightens_its_mode(
    tmp_path: Path, permissive_umask: None
) -> None:
    path = tmp_path / "credentials.json"
    path.write_text('{"old": true}')
    path.chmod(0o644)
    write_private_json(path, {"new": True})
    assert json.loads(path.read_text()) == {"new": True}
    assert _mode(path) == 0o600


def test_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "initial-admin.json"
    write_private_json(path, {"a": 1})
    write_private_json(path, {"a": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["initial-admin.json"]
    assert json.loads(path.read_text()) == {"a": 2}


def test_a_failed_write_keeps_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    write_private_json(path, {"token": "old"})
    with pytest.raises(TypeError):
        write_private_json(path, {"token": object()})
    assert json.loads(path.read_text()) == {"token": "old"}


def test_existing_parent_folder_is_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    write_private_json(tmp_path / "x.json", {})
    assert _mode(tmp_path) == 0o755
