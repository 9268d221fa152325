"""The local-folder backend: one account's objects as files under its own root.

Layout under ``root``: each object is the file ``root/<key>``; ketch's own bookkeeping
lives in ``root/.ketch/`` (no key may start with ``.ketch``): ``staging/`` for writes
in progress and ``meta/`` for each object's recorded size and SHA-256.

A write goes to a staging file on the same file system, is fsynced, and is renamed over
the key in one step, so a reader sees the old object or the whole new one. The recorded
checksum names the inode it was computed for; should a crash or a concurrent writer
leave it describing another file, the checksum is reported unknown rather than wrong.

Containment is checked on every access, after resolving symlinks: the resolved folder
of a key must be inside the resolved root, and the object itself is opened without
following a symlink, so neither ``..`` nor a link planted in the folder reaches out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ketch.artifact_store.backends import (
    CHUNK_BYTES,
    ChecksumMismatch,
    ObjectMissing,
    StoredObject,
)
from ketch.core.errors import Conflict, InvalidInput
from ketch.core.files import write_hashed

INTERNAL_DIR = ".ketch"


class LocalBackend:
    """Objects of one account under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- the interface ----------------------------------------------------------------

    def put(
        self, key: str, chunks: Iterable[bytes], *, expected_sha256: str | None = None
    ) -> StoredObject:
        _refuse_folder(key, self._path(key))  # before anything is read or written
        staging = self._internal("staging")
        fd, staged_name = tempfile.mkstemp(dir=staging, prefix="put-")
        staged = Path(staged_name)
        try:
            size, sha256 = write_hashed(fd, chunks)
            if expected_sha256 is not None and expected_sha256.lower() != sha256:
                raise ChecksumMismatch(
                    f"the content of '{key}' hashes to sha256 {sha256}, not the declared "
                    f"{expected_sha256}; nothing was stored"
                )
            self._write_meta(key, {"size": size, "sha256": sha256, "inode": staged.stat().st_ino})
            target = self._move_into_place(key, staged)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
        return StoredObject(key, size, sha256, _modified(target.stat(follow_symlinks=False)))

    def open(self, key: str) -> tuple[StoredObject, Iterator[bytes]]:
        target = self._path(key)
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(f"no object '{key}'") from None
        except OSError as exc:  # ELOOP: the key names a symlink, which no object is
            raise ObjectMissing(f"no object '{key}'") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise ObjectMissing(f"no object '{key}'")
        return self._describe(key, info), _read_chunks(fd)

    def head(self, key: str) -> StoredObject:
        info = self._stat(key)
        if info is None:
            raise ObjectMissing(f"no object '{key}'")
        return self._describe(key, info)

    def list_objects(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> list[StoredObject]:
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        if not start.is_dir() or start.is_symlink():
            return []
        found: list[StoredObject] = []
        for key, info in self._walk_in_order(start, folder, prefix=prefix, after=after):
            found.append(self._describe(key, info))
            if len(found) == limit:
                break
        return found

    def delete(self, key: str) -> bool:
        target = self._path(key)
        if self._stat(key) is None:
            return False
        try:
            target.unlink()
        except FileNotFoundError:
            return False  # a concurrent delete got there first
        with contextlib.suppress(FileNotFoundError):
            self._meta_path(key).unlink()
        self._prune_empty_folders(target.parent)
        return True

    def _move_into_place(self, key: str, staged: Path) -> Path:
        """Rename the staged file over the key, creating its folders just before.

        The folders are made only now, after the content arrived, so a slow upload never
        holds empty folders open. A concurrent delete may prune them between the mkdir and
        the rename; the rename is then tried once more on freshly made folders.
        """
        try:
            return self._replace(key, staged)
        except FileNotFoundError:
            return self._replace(key, staged)

    def _replace(self, key: str, staged: Path) -> Path:
        target = self._path(key, create_parents=True)
        _refuse_folder(key, target)
        os.replace(staged, target)
        _fsync_dir(target.parent)
        return target

    # -- paths and containment ----------------------------------------------------------

    def _path(self, key: str, *, create_parents: bool = False) -> Path:
        """``root/<key>``, refused unless every folder on the way is a real folder (never a
        symlink) and the key's folder resolves inside the root."""
        parts = key.split("/") if key else []
        if any(p in {"", ".", ".."} for p in parts) or "\x00" in key:
            raise InvalidInput(f"artifact key {key!r} is not a relative path")
        if parts and parts[0].lower().startswith(INTERNAL_DIR):
            raise InvalidInput(f"artifact key {key!r} is reserved")
        if create_parents:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = self.root
        for name in parts[:-1]:
            folder = folder / name
            if create_parents:
                with contextlib.suppress(FileExistsError):
                    folder.mkdir(mode=0o700)
            if folder.is_symlink():
                raise InvalidInput(f"artifact key {key!r} leads outside the account's storage")
            if create_parents and not folder.is_dir():
                raise Conflict(f"a folder of '{key}' is itself an object; it cannot hold others")
        self._check_inside(folder)
        return self.root.joinpath(*parts)

    def _check_inside(self, folder: Path) -> None:
        root = self.root.resolve()
        resolved = folder.resolve()
        if resolved != root and not resolved.is_relative_to(root):
            raise InvalidInput("artifact key leads outside the account's storage")

    def _stat(self, key: str) -> os.stat_result | None:
        try:
            info = self._path(key).stat(follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info if stat.S_ISREG(info.st_mode) else None

    def _walk_in_order(
        self, start: Path, folder: str, *, prefix: str, after: str
    ) -> Iterator[tuple[str, os.stat_result]]:
        """(key, stat) of each regular file below ``start`` whose key starts with ``prefix``
        and sorts after ``after``, in key order; links and ``.ketch`` are skipped.

        A folder sorts as its name followed by ``/``: then visiting the entries of each
        folder in sorted order yields keys in the order of their UTF-8 bytes, as S3 lists
        them. Folders wholly before ``after`` or outside ``prefix`` are never opened, so a
        page costs what it returns, not the size of the tree.
        """
        pending = [iter(self._sorted_entries(start, folder, prefix=prefix, after=after))]
        while pending:
            entry = next(pending[-1], None)
            if entry is None:
                pending.pop()
                continue
            key, is_folder, path = entry
            if is_folder:
                pending.append(iter(self._sorted_entries(path, key, prefix=prefix, after=after)))
            else:
                with contextlib.suppress(FileNotFoundError):  # deleted since it was listed
                    info = path.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        yield key, info

    def _sorted_entries(
        self, directory: Path, relative: str, *, prefix: str, after: str
    ) -> list[tuple[str, bool, Path]]:
        """The entries of one folder worth visiting, as (key, is folder, path), sorted."""
        chosen: list[tuple[str, bool, Path]] = []
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return chosen  # removed by a concurrent delete
        for entry in entries:
            if not relative and entry.name == INTERNAL_DIR:
                continue
            key = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir(follow_symlinks=False):
                below = key + "/"
                wanted = below.startswith(prefix) or prefix.startswith(below)
                if wanted and (below > after or after.startswith(below)):
                    chosen.append((below, True, Path(entry.path)))
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix) and key > after:
                chosen.append((key, False, Path(entry.path)))
        chosen.sort(key=lambda item: item[0])
        return [
            (key.removesuffix("/") if is_folder else key, is_folder, path)
            for key, is_folder, path in chosen
        ]

    def _prune_empty_folders(self, folder: Path) -> None:
        """Remove folders the delete left empty, up to the root: keys, not folders, exist."""
        root = self.root.resolve()
        current = folder
        while current.resolve() != root and current.resolve().is_relative_to(root):
            try:
                current.rmdir()
            except OSError:
                return
            current = current.parent

    # -- recorded size and checksum -----------------------------------------------------

    def _internal(self, name: str) -> Path:
        path = self.root / INTERNAL_DIR / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _meta_path(self, key: str) -> Path:
        name = hashlib.sha256(key.encode()).hexdigest()
        return self.root / INTERNAL_DIR / "meta" / f"{name}.json"

    def _write_meta(self, key: str, record: dict[str, object]) -> None:
        folder = self._internal("meta")
        fd, staged = tempfile.mkstemp(dir=folder, prefix="meta-")
        with os.fdopen(fd, "w") as out:
            json.dump({"key": key, **record}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, self._meta_path(key))

    def _describe(self, key: str, info: os.stat_result) -> StoredObject:
        sha256: str | None = None
        try:
            record = json.loads(self._meta_path(key).read_text())
        except (FileNotFoundError, ValueError):
            record = {}
        if record.get("inode") == info.st_ino and record.get("size") == info.st_size:
            sha256 = record.get("sha256")
        return StoredObject(key, info.st_size, sha256, _modified(info))


def _refuse_folder(key: str, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        raise Conflict(f"'{key}' is a folder of other objects; it cannot be an object too")


def _read_chunks(fd: int) -> Iterator[bytes]:
    """The file's content in ``CHUNK_BYTES`` pieces; the descriptor is closed at the end
    or when the consumer closes the generator."""
    try:
        while chunk := os.read(fd, CHUNK_BYTES):
            yield chunk
    finally:
        os.close(fd)


def _modified(info: os.stat_result) -> datetime:
    return datetime.fromtimestamp(info.st_mtime, UTC)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
