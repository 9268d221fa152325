"""Where artifact bytes live: one small interface, a local folder and S3-compatible stores.

A backend holds one account's objects under its own root (a folder, or a bucket and a
prefix). It is handed keys already checked by :func:`ketch.core.artifact_uri.validate_key`
and checks containment again itself. Every backend passes ``tests/artifact_store/
backends/test_conformance.py``; the S3 backend is run there against a real S3-compatible
server on loopback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ketch.core.errors import InvalidInput, KetchError
from ketch.core.files import CHUNK_BYTES

__all__ = ["CHUNK_BYTES", "ChecksumMismatch", "ObjectBackend", "ObjectMissing", "StoredObject"]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a backend knows of one object."""

    key: str
    size: int
    sha256: str | None
    """Hex SHA-256 of the content, recorded when it was written; ``None`` in listings of
    a backend that cannot return it without reading each object (S3)."""
    modified: datetime


class ChecksumMismatch(InvalidInput):
    """The bytes received do not hash to the checksum the client declared; nothing stored."""


class ObjectMissing(KetchError):
    """No object at the key (the service turns it into NotFound with the URI)."""


class ObjectBackend(Protocol):
    """One account's object storage."""

    def put(
        self, key: str, chunks: Iterable[bytes], *, expected_sha256: str | None = None
    ) -> StoredObject:
        """Store ``chunks`` at ``key``, replacing any object there, atomically.

        Readers see the previous object or the complete new one, never a part. The
        SHA-256 is computed while writing; if ``expected_sha256`` is given and differs,
        nothing is stored and :class:`ChecksumMismatch` is raised. If ``chunks`` raises,
        nothing is stored and the exception propagates.
        """
        ...

    def open(self, key: str) -> tuple[StoredObject, Iterator[bytes]]:
        """The object's description and its content in chunks of at most ``CHUNK_BYTES``.

        :class:`ObjectMissing` if there is none. The iterator must be exhausted or
        closed (``close()``) to release the file or connection.
        """
        ...

    def head(self, key: str) -> StoredObject:
        """The object's description; :class:`ObjectMissing` if there is none."""
        ...

    def list_objects(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> list[StoredObject]:
        """Up to ``limit`` objects whose key starts with ``prefix`` and sorts after
        ``after``, in key order (byte order of the UTF-8 keys)."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the object; ``False`` if there was none."""
        ...
