"""Reading a job's ``requirements.txt`` for :mod:`ketch.compute.environments`: its
normalised lines, and a digest of every local file or folder it names.

Both go into an environment's key, so two bundles whose requirements would install the
same packages share one environment, and a bundle whose local wheel or package changed
gets a new one. Layer: a service module (stdlib and ``ketch.core`` only).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ketch.core.errors import InvalidInput

__all__ = ["MAX_LOCAL_BYTES", "REQUIREMENTS_FILE", "local_digests", "requirement_lines"]

REQUIREMENTS_FILE = "requirements.txt"
MAX_REQUIREMENTS_BYTES = 1024 * 1024
MAX_LOCAL_BYTES = 256 * 1024**2
"""Most bytes of local files one key may hash (a ``.`` naming a huge bundle is refused)."""

_COMMENT = re.compile(r"(^|\s)#.*$")
_EDITABLE = re.compile(r"(-e|--editable)(=|\s*)(?P<target>.*)")
_PATH_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-f", "--find-links")
_LISTED = ("-f", "--find-links")
"""Options naming a folder of packages, known by its listing (pip picks files by name)."""
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar")


def requirement_lines(path: Path) -> list[str]:
    """The file's logical lines (continuations joined, comments and spacing dropped);
    none when the file is missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InvalidInput(f"{REQUIREMENTS_FILE} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidInput(f"{REQUIREMENTS_FILE} must be a regular file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_REQUIREMENTS_BYTES + 1)
    if len(data) > MAX_REQUIREMENTS_BYTES:
        raise InvalidInput(f"{REQUIREMENTS_FILE} is larger than {MAX_REQUIREMENTS_BYTES} bytes")
    text = data.decode("utf-8-sig", errors="surrogateescape")
    lines: list[str] = []
    pending = ""
    for raw in [*text.splitlines(), ""]:
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        words = _COMMENT.sub("", pending + raw).split()
        pending = ""
        if words:
            lines.append(" ".join(words))
    return lines


def local_digests(code: Path, lines: list[str]) -> dict[str, str]:
    """A digest of each existing local file or folder the requirements name, by name.

    Paths are recognised as pip recognises them: the argument of ``-r``, ``-c``, ``-f``
    (and their long forms), a ``file:`` URL, or a word with a ``/``, a leading ``.`` or
    an archive's suffix (``./pkg``, ``.``, ``dist/x.whl``); relative to the code folder.
    Files count by content (bundles are packed with fixed times, so a changed file may
    keep its size and time); a ``--find-links`` folder, which may be a large shared
    wheelhouse, by its listing (names, sizes, times). An editable install of a local
    path is refused: it would point into one job's root, which does not outlive the
    job, from an environment that does.
    """
    digests: dict[str, str] = {}
    budget = MAX_LOCAL_BYTES
    for line in lines:
        editable = _EDITABLE.fullmatch(line)
        if editable and _local_path(code, editable["target"], explicit=True) is not None:
            raise InvalidInput(
                f"{REQUIREMENTS_FILE} line {line[:80]!r}: an editable install of a local "
                "path is not supported; drop -e (a plain path is installed as a copy)"
            )
        for word, option in _path_words(line):
            path = _local_path(code, word, explicit=option is not None)
            if path is None or word in digests:
                continue
            if option in _LISTED and path.is_dir():
                digests[word] = _listing(path)
            else:
                digests[word], budget = _digest(path, budget)
    return digests


def _path_words(line: str) -> Iterator[tuple[str, str | None]]:
    """Each word that may name a path, and the option that says it does (if any)."""
    option: str | None = None
    for word in line.split():
        if option is not None:
            yield word, option
            option = None
        elif word.startswith("--"):
            name, equals, value = word.partition("=")
            if name in _PATH_OPTIONS:
                if equals:
                    yield value, name
                else:
                    option = name
        elif word.startswith("-"):
            if word[:2] in _PATH_OPTIONS:
                if len(word) > 2:
                    yield word[2:], word[:2]
                else:
                    option = word
        else:
            yield word, None


def _local_path(code: Path, word: str, *, explicit: bool) -> Path | None:
    if "://" in word or word.startswith("file:"):
        url = urlsplit(word)
        if url.scheme != "file":
            return None
        word, explicit = unquote(url.path), True
    looks_like_path = "/" in word or word.startswith(".") or word.endswith(_ARCHIVES)
    if not word or not (explicit or looks_like_path):
        return None
    path = code / word  # an absolute word replaces the folder
    try:
        return path if os.path.lexists(path) else None
    except (OSError, ValueError):
        return None


def _digest(path: Path, budget: int) -> tuple[str, int]:
    """SHA-256 over a file's bytes, or over a folder's relative names and file bytes
    (sorted; links inside by their target's name), and what is left of ``budget``."""
    digest = hashlib.sha256()
    for name, item in _walk(path.resolve()):
        digest.update(f"\0{name}\0".encode("utf-8", "surrogateescape"))
        if item.is_symlink():
            digest.update(os.readlink(item).encode("utf-8", "surrogateescape"))
        elif item.is_file():
            budget -= item.stat().st_size
            if budget < 0:
                raise InvalidInput(
                    f"the local paths {REQUIREMENTS_FILE} names hold more than "
                    f"{MAX_LOCAL_BYTES // 1024**2} MiB; install large packages from an index"
                )
            with open(item, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest(), budget


def _listing(folder: Path) -> str:
    """SHA-256 over the names, sizes and modification times of a folder's entries."""
    digest = hashlib.sha256()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        info = entry.stat(follow_symlinks=False)
        digest.update(
            f"\0{entry.name}\0{info.st_size}\0{info.st_mtime_ns}".encode("utf-8", "surrogateescape")
        )
    return digest.hexdigest()


def _walk(path: Path) -> Iterator[tuple[str, Path]]:
    if not path.is_dir():
        yield "", path
        return
    for top, folders, files in os.walk(path):
        folders.sort()
        links = [f for f in folders if os.path.islink(os.path.join(top, f))]
        for name in sorted(files + links):
            item = Path(top, name)
            yield str(item.relative_to(path)), item
