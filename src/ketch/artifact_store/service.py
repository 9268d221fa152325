"""The artifact store service: objects in an account's storage, by ``ketch://`` URI.

Callers (the API, the job runner) have already authorised the account; these functions
validate keys and checksums, and turn backend answers into wire schemas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ketch.artifact_store.backends import ObjectMissing, StoredObject
from ketch.artifact_store.store import ArtifactStore
from ketch.core.artifact_uri import ArtifactUri, validate_key
from ketch.core.errors import InvalidInput, NotFound
from ketch.schemas.artifacts import Artifact

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_LIST_LIMIT = 1001
"""A page of 1,000, and one more to tell whether another page follows."""


def put_artifact(
    store: ArtifactStore,
    account: str,
    key: str,
    chunks: Iterable[bytes],
    *,
    expected_sha256: str | None = None,
) -> Artifact:
    """Store ``chunks`` at ``ketch://<account>/<key>``, atomically, replacing any object."""
    validate_key(key)
    if expected_sha256 is not None and not _SHA256.fullmatch(expected_sha256):
        raise InvalidInput("a SHA-256 checksum is 64 hexadecimal digits")
    stored = store.backend(account).put(key, chunks, expected_sha256=expected_sha256)
    return _artifact(account, stored)


def open_artifact(store: ArtifactStore, account: str, key: str) -> tuple[Artifact, Iterator[bytes]]:
    """The object's description and its content, streamed; :class:`NotFound` if none."""
    validate_key(key)
    try:
        stored, chunks = store.backend(account).open(key)
    except ObjectMissing:
        raise NotFound(f"artifact '{ArtifactUri(account, key)}' does not exist") from None
    return _artifact(account, stored), chunks


def describe_artifact(store: ArtifactStore, account: str, key: str) -> Artifact:
    validate_key(key)
    try:
        return _artifact(account, store.backend(account).head(key))
    except ObjectMissing:
        raise NotFound(f"artifact '{ArtifactUri(account, key)}' does not exist") from None


def list_artifacts(
    store: ArtifactStore, account: str, prefix: str = "", *, after: str = "", limit: int = 100
) -> list[Artifact]:
    """Objects under ``prefix`` (a plain string prefix of keys) sorting after ``after``."""
    validate_key(prefix, allow_prefix=True)
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}")
    stored = store.backend(account).list_objects(prefix, after=after, limit=limit)
    return [_artifact(account, item) for item in stored]


def delete_artifact(store: ArtifactStore, account: str, key: str) -> None:
    validate_key(key)
    if not store.backend(account).delete(key):
        raise NotFound(f"artifact '{ArtifactUri(account, key)}' does not exist")


def _artifact(account: str, stored: StoredObject) -> Artifact:
    return Artifact(
        uri=str(ArtifactUri(account, stored.key)),
        account=account,
        key=stored.key,
        size=stored.size,
        sha256=stored.sha256,
        modified=stored.modified,
    )
