"""core.files: private JSON written atomically, hashed writes, contained paths."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ketch.core.errors import InvalidInput
from ketch.core.files import (
    contained_path,
    write_hashed,
    write_private_json,
    write_private_text,
)


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


@pytest.mark.parametrize(
    "relative",
    [
        "../x",
        "a/../../x",
        "a/..",
        "/etc/passwd",
        "C:x",
        "C:/Windows/x",
        "a\\..\\..\\x",
        "",
        "a//b",
        "./a",
        "a/.",
        "nul\0byte",
    ],
)
def test_contained_path_refuses_anything_but_a_plain_relative_path(
    tmp_path: Path, relative: str
) -> None:
    with pytest.raises(InvalidInput):
        contained_path(tmp_path, relative)


def test_contained_path_refuses_a_way_out_through_a_symbolic_link(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    (root / "in").symlink_to(root / "inside", target_is_directory=True)

    with pytest.raises(InvalidInput, match="outside"):
        contained_path(root, "out/x")
    assert contained_path(root, "in/x") == (root / "inside" / "x").resolve()
    assert contained_path(root, "with space/ü 100%.txt") == (
        root.resolve() / "with space" / "ü 100%.txt"
    )


def test_write_hashed_reports_size_and_digest_and_each_chunk(tmp_path: Path) -> None:
    chunks = [b"alpha", b"", b"beta" * 1000]
    seen: list[int] = []
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    size, digest = write_hashed(fd, chunks, on_chunk=seen.append)
    content = b"".join(chunks)
    assert (tmp_path / "out").read_bytes() == content
    assert (size, digest) == (len(content), hashlib.sha256(content).hexdigest())
    assert seen == [len(c) for c in chunks]


@pytest.mark.parametrize("sync", [True, False])
def test_a_private_file_is_private_from_its_first_byte(
    tmp_path: Path, permissive_umask: None, monkeypatch: pytest.MonkeyPatch, sync: bool
) -> None:
    """Checked on the temporary file before the rename: created 0600, not chmod-ed later."""
    seen: list[int] = []
    rename = os.replace

    def look_then_rename(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        seen.append(_mode(Path(source)))
        rename(source, target)

    monkeypatch.setattr(os, "replace", look_then_rename)
    write_private_text(tmp_path / "launch.json", '{"env": {"SECRET": "s3cr3t"}}', sync=sync)
    assert seen == [0o600]
    assert [p.name for p in tmp_path.iterdir()] == ["launch.json"]
