"""Tar archives in and out of jobs and model servers, refused whole when unsafe.

Source bundles (``sourcedir.tar.gz``) and model archives (``model.tar.gz``) come from
users. Before a single byte is extracted, every member is checked: only regular files
and folders, relative names with no ``..``, nothing absolute, no links, devices or
FIFOs, and limits on the member count, the total size and the expansion ratio (a
"zip bomb" of a few KiB that expands to terabytes). Extraction then runs with Python's
``data`` filter as a second lock. Packing is deterministic (sorted names, fixed owners
and times), so the same folder always gives the same bytes and the same checksum.

Each function takes an optional ``tick``, called before every member and after every MiB
read: a job's runner renews its lease there (an archive of many gigabytes outlasts any
lease), and whatever ``tick`` raises stops the work and propagates unchanged.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

from ketch.core.errors import InvalidInput

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "ArchiveLimits",
    "Tick",
    "UnsafeArchive",
    "check_archive",
    "extract_archive",
    "pack_folder",
]

Tick = Callable[[], None]
"""Called every so often during long work (see the module docstring)."""
TICK_BYTES = 1024 * 1024
T = TypeVar("T")


class UnsafeArchive(InvalidInput):
    """The archive is refused as a whole; nothing was extracted."""


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_members: int = 100_000
    max_total_bytes: int = 20 * 1024**3
    max_ratio: float = 200.0
    """Largest allowed (total member bytes / archive bytes); text compresses ~10x."""
    min_ratio_checked_bytes: int = 64 * 1024**2
    """Below this total, any ratio is fine: small archives cannot exhaust a disk."""


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    members: int
    total_bytes: int


def check_archive(
    path: Path, limits: ArchiveLimits = ArchiveLimits(), *, tick: Tick | None = None
) -> ArchiveSummary:
    """Every member of the tar (any compression) at ``path`` checked; :class:`UnsafeArchive`
    names the first offence."""
    name = path.name
    members = 0
    total = 0
    try:
        with _TickingReader(path, tick) as raw, tarfile.open(fileobj=raw, mode="r:*") as archive:
            for member in _ticking(archive, tick):
                members += 1
                if members > limits.max_members:
                    raise UnsafeArchive(f"{name} has more than {limits.max_members} members")
                _check_member(name, member)
                total += member.size
                if total > limits.max_total_bytes:
                    raise UnsafeArchive(
                        f"{name} expands to more than {limits.max_total_bytes} bytes"
                    )
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchive(f"{name} is not a readable tar archive: {exc}") from None
    packed = max(path.stat().st_size, 1)
    if total >= limits.min_ratio_checked_bytes and total / packed > limits.max_ratio:
        raise UnsafeArchive(
            f"{name} expands {total / packed:.0f}x ({packed} bytes to {total}); "
            f"more than {limits.max_ratio:.0f}x looks like a decompression bomb"
        )
    return ArchiveSummary(members, total)


def _check_member(archive: str, member: tarfile.TarInfo) -> None:
    shown = repr(member.name[:200])
    if not (member.isfile() or member.isdir()):
        kind = "a link" if member.issym() or member.islnk() else "a device, FIFO or special file"
        raise UnsafeArchive(f"{archive}: member {shown} is {kind}; only files and folders")
    if "\x00" in member.name or "\\" in member.name:
        raise UnsafeArchive(f"{archive}: member {shown} has a NUL or backslash in its name")
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith("/"):
        raise UnsafeArchive(f"{archive}: member {shown} is an absolute path")
    if any(part == ".." for part in path.parts):
        raise UnsafeArchive(f"{archive}: member {shown} climbs out with '..'")
    if len(path.parts) > 0 and len(path.parts[0]) > 1 and path.parts[0][1] == ":":
        raise UnsafeArchive(f"{archive}: member {shown} names a drive")


def extract_archive(
    path: Path,
    destination: Path,
    limits: ArchiveLimits = ArchiveLimits(),
    *,
    tick: Tick | None = None,
) -> ArchiveSummary:
    """Check the archive whole, then extract it into ``destination`` (created, 0700)."""
    summary = check_archive(path, limits, tick=tick)
    destination.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _TickingReader(path, tick) as raw, tarfile.open(fileobj=raw, mode="r:*") as archive:
        archive.extractall(destination, members=_ticking(archive, tick), filter="data")
    return summary


def pack_folder(
    folder: Path,
    destination: Path,
    *,
    leave_out: frozenset[str] = frozenset(),
    skip_links: bool = False,
    folder_entries: bool = True,
    tick: Tick | None = None,
) -> Path:
    """``folder``'s content as a gzip tar at ``destination`` (members relative to the
    folder, as SageMaker's ``model.tar.gz``), written whole or not at all.

    Links and special files are refused (:class:`UnsafeArchive`), or with
    ``skip_links`` left out; folders named in ``leave_out`` are left out with their
    content; ``folder_entries=False`` stores files only. Modes are 0644, or 0755 for
    folders and executable files.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    staged = destination.with_name(f".{destination.name}.partial")
    try:
        # No file name and no time in the gzip header: the bytes depend on content only.
        with (
            staged.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
        ):
            for path in _ticking(_sorted_tree(folder, leave_out), tick):
                relative = path.relative_to(folder).as_posix()
                info = archive.gettarinfo(str(path), arcname=relative)
                if not (info.isfile() or info.isdir()):
                    if skip_links:
                        continue
                    raise UnsafeArchive(f"{relative} in {folder.name}/ is not a file or folder")
                if info.isdir() and not folder_entries:
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode = 0o755 if info.isdir() or info.mode & stat.S_IXUSR else 0o644
                if info.isfile():
                    with _TickingReader(path, tick) as handle:
                        archive.addfile(info, handle)
                else:
                    archive.addfile(info)
        os.replace(staged, destination)
    finally:
        staged.unlink(missing_ok=True)
    return destination


def _sorted_tree(folder: Path, leave_out: frozenset[str]) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        dirs[:] = sorted(d for d in dirs if d not in leave_out)
        found += [base / d for d in dirs]
        found += [base / f for f in sorted(files)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _ticking(items: Iterable[T], tick: Tick | None) -> Iterator[T]:
    """``items``, with ``tick`` called before each."""
    for item in items:
        if tick is not None:
            tick()
        yield item


class _TickingReader(io.FileIO):
    """A file opened for reading that calls ``tick`` after each MiB read from it."""

    def __init__(self, path: Path, tick: Tick | None) -> None:
        super().__init__(path, "rb")
        self._tick = tick
        self._unticked = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self._count(len(data))
        return data

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        read = super().readinto(buffer)
        self._count(read)
        return read

    def _count(self, read: int) -> None:
        self._unticked += read
        if self._tick is not None and self._unticked >= TICK_BYTES:
            self._unticked = 0
            self._tick()
