"""The local backend's own guarantees: containment after symlinks, folders, recorded checksums."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ketch.artifact_store.backends import ObjectMissing
from ketch.artifact_store.backends.local import LocalBackend
from ketch.core.errors import Conflict, InvalidInput


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the account's root, with a file an escape would reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not yours")
    return folder


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    store = LocalBackend(tmp_path / "accounts" / "fraud-dev")
    store.put("seed.txt", [b"seed"])
    return store


def test_a_folder_symlinked_outside_is_neither_written_nor_read(
    backend: LocalBackend, outside: Path
) -> None:
    (backend.root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="outside"):
        backend.put("escape/planted.txt", [b"x"])
    assert not (outside / "planted.txt").exists()
    with pytest.raises(InvalidInput, match="outside"):
        backend.open("escape/secret.txt")
    with pytest.raises(InvalidInput, match="outside"):
        backend.delete("escape/secret.txt")
    assert (outside / "secret.txt").exists()
    assert [o.key for o in backend.list_objects("")] == ["seed.txt"]


def test_a_deeper_symlinked_folder_is_refused_before_anything_is_created(
    backend: LocalBackend, outside: Path
) -> None:
    (backend.root / "data").mkdir()
    (backend.root / "data" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="outside"):
        backend.put("data/link/new/deeper.txt", [b"x"])
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_an_object_that_is_a_symlink_is_not_followed(backend: LocalBackend, outside: Path) -> None:
    (backend.root / "alias.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(ObjectMissing):
        backend.open("alias.txt")
    with pytest.raises(ObjectMissing):
        backend.head("alias.txt")
    assert "alias.txt" not in [o.key for o in backend.list_objects("")]
    # Overwriting the link replaces the link, never the file it points to.
    backend.put("alias.txt", [b"mine"])
    assert (outside / "secret.txt").read_text() == "not yours"
    assert b"".join(backend.open("alias.txt")[1]) == b"mine"


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", ".ketch/meta/x"]
)
def test_keys_that_are_not_plain_relative_paths_are_refused(
    backend: LocalBackend, key: str
) -> None:
    with pytest.raises(InvalidInput):
        backend.put(key, [b"x"])
    with pytest.raises(InvalidInput):
        backend.open(key)


def test_an_object_and_a_folder_cannot_share_a_name(backend: LocalBackend) -> None:
    backend.put("models/v1", [b"a file"])
    with pytest.raises(Conflict, match="itself an object"):
        backend.put("models/v1/model.tar.gz", [b"x"])
    backend.put("runs/1/metrics.json", [b"{}"])
    with pytest.raises(Conflict, match="folder"):
        backend.put("runs/1", [b"x"])


def test_deleting_the_last_object_of_a_folder_removes_the_folder(backend: LocalBackend) -> None:
    backend.put("a/b/c.txt", [b"x"])
    assert backend.delete("a/b/c.txt")
    assert not (backend.root / "a").exists()
    assert backend.root.exists()


def test_a_checksum_recorded_for_another_file_is_reported_unknown(backend: LocalBackend) -> None:
    stored = backend.put("data.csv", [b"a,b\n1,2\n"])
    assert stored.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    # Someone replaces the file behind ketch's back: the record no longer describes it.
    replacement = backend.root / "replacement"
    replacement.write_bytes(b"a,b\n3,4\n")
    os.replace(replacement, backend.root / "data.csv")
    assert backend.head("data.csv").sha256 is None
    assert backend.open("data.csv")[0].sha256 is None


def test_files_are_private_to_the_server_user(backend: LocalBackend) -> None:
    backend.put("deep/file.bin", [b"x"])
    assert (backend.root / "deep").stat().st_mode & 0o077 == 0
    assert (backend.root / ".ketch" / "staging").stat().st_mode & 0o077 == 0
    assert list((backend.root / ".ketch" / "staging").iterdir()) == []


def test_writes_and_deletes_in_one_folder_at_once_all_succeed(backend: LocalBackend) -> None:
    """A delete that empties a folder prunes it; a write into that folder at the same time
    must still land (its folders are made again) and a second delete finds nothing."""
    errors: list[BaseException] = []

    def slow_chunks() -> Iterator[bytes]:
        yield b"first half "
        time.sleep(0.001)  # the delete below runs while this write streams
        yield b"second half"

    def write(round_: int) -> None:
        try:
            backend.put(f"race/{round_}/new.txt", slow_chunks())
        except BaseException as exc:
            errors.append(exc)

    def delete(round_: int) -> None:
        try:
            assert backend.delete(f"race/{round_}/old.txt")
            assert not backend.delete(f"race/{round_}/old.txt")
        except BaseException as exc:
            errors.append(exc)

    for round_ in range(100):
        backend.put(f"race/{round_}/old.txt", [b"old"])
        threads = [
            threading.Thread(target=write, args=(round_,)),
            threading.Thread(target=delete, args=(round_,)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert backend.open(f"race/{round_}/new.txt")[0].size == len(b"first half second half")
