"""Small file helpers shared by the server, the SDK and the CLI."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PureWindowsPath

from ketch.core.errors import InvalidInput

CHUNK_BYTES = 1024 * 1024
"""How much of a file is read, sent or hashed at a time: memory stays flat for any size."""


def write_private_json(path: Path, data: dict[str, object], *, sync: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` as :func:`write_private_text` does."""
    write_private_text(path, json.dumps(data, indent=2), sync=sync)


def write_private_text(path: Path, text: str, *, sync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (0600).

    The file is created with mode 0600 from the start (never world-readable for an
    instant), fsynced unless ``sync`` is false (state that a machine crash makes moot
    anyway), then renamed over any previous version. The temporary name is the writer's
    own (process and thread), so two writers of one file never interleave.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_hashed(
    fd: int,
    chunks: Iterable[bytes],
    *,
    sync: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Write ``chunks`` to the open descriptor ``fd`` (closed after), hashing them on the
    way; returns their total size and hex SHA-256. ``sync`` fsyncs before closing;
    ``on_chunk`` is told each chunk's size (a progress bar)."""
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
        if sync:
            out.flush()
            os.fsync(out.fileno())
    return size, digest.hexdigest()


def contained_path(root: Path, relative: str) -> Path:
    """``root/relative`` resolved, if it lies strictly inside ``root``; else InvalidInput.

    ``relative`` comes from elsewhere (a key a server sent, an object below a prefix).
    ``../x``, ``/etc/x``, ``C:x``, ``a/../..`` and a path through a symbolic link already
    in ``root`` that points elsewhere are all refused: where a file is written is never up
    to the sender.
    """
    parts = relative.split("/")
    if (
        not relative
        or relative.startswith("/")
        or "\\" in relative
        or "\0" in relative
        or PureWindowsPath(relative).drive
        or any(part in {"", ".", ".."} for part in parts)
    ):
        raise InvalidInput(
            f"{relative!r} is not a plain relative path (names separated by '/', "
            "no empty, '.' or '..' names, no leading '/', drive or backslash)"
        )
    base = root.resolve()
    candidate = base.joinpath(*parts).resolve()
    if candidate == base or not candidate.is_relative_to(base):
        raise InvalidInput(f"{relative!r} would be written outside {base}")
    return candidate


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created 0600) for the ``with`` block: between
    threads and processes alike, and released if its holder dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
