"""The S3 backend: one account's objects in a bucket of any S3-compatible store, via obstore.

Objects live at ``<prefix>/<key>`` in the location's bucket. A write is first spooled to
a private file in ``staging_dir``, hashed on the way, because the SHA-256 must be known,
and checked against the client's, before anything becomes visible. Only then is the file
uploaded: an S3 PUT, or the completion of a multipart upload, is atomic, so readers see
the previous object or the whole new one, and a failed write uploads nothing at all. The
digest is stored as the user metadata ``sha256`` (``x-amz-meta-sha256``); objects written
by other tools have none and report ``sha256=None``, as do listings (S3 lists no metadata).

obstore behaviours this module works around:

- Building a store reads ``AWS_*`` variables from the process environment. Explicit keys
  are therefore handed over through a credential provider, or an ambient
  ``AWS_SESSION_TOKEN`` (an instance role's) would be sent along with them and every
  request refused. ``AWS_ENDPOINT_URL_S3`` even beats an explicit endpoint (obstore
  0.12); the server's environment must not set it.
- A missing object raises the built-in ``FileNotFoundError``, not obstore's
  ``NotFoundError``.
- Listing prefixes match whole path segments (``a`` lists ``a/x`` but not ``ab``), while
  :meth:`~ketch.artifact_store.backends.ObjectBackend.list_objects` matches plain string
  prefixes: the listing starts at the prefix's last ``/`` and is filtered here.
- Error texts may quote the server's reply, which for a bad signature names the access
  key: they are logged with the keys masked and never copied into a raised error.
- Requests time out after 30 s by default, body included, which would cut a large
  download short: the bound here is :data:`TRANSFER_TIMEOUT` per request.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import InvalidPathError
from obstore.store import S3Store

from ketch.artifact_store.backends import (
    CHUNK_BYTES,
    ChecksumMismatch,
    ObjectMissing,
    StoredObject,
)
from ketch.core.errors import BackendUnavailable, InvalidInput
from ketch.core.files import write_hashed

if TYPE_CHECKING:
    from obstore import GetResult, ObjectMeta
    from obstore.store import ClientConfig, RetryConfig, S3Config, S3Credential

__all__ = ["S3Backend", "S3Location"]

logger = logging.getLogger(__name__)

SHA256_METADATA = "sha256"
"""User-metadata key of the content's hex SHA-256."""
CONNECT_TIMEOUT = timedelta(seconds=5)
TRANSFER_TIMEOUT = timedelta(hours=1)
"""Upper bound of one request, body included: one download is one request."""
MAX_RETRIES = 3
RETRY_TIMEOUT = timedelta(seconds=30)
"""Connection errors and 5xx replies are retried, for at most this long in all."""
UPLOAD_PART_BYTES = 8 * 1024 * 1024
"""Multipart part size: S3 allows 10,000 parts, so objects of up to 80 GiB."""
UPLOAD_CONCURRENCY = 4
"""Parts in flight per upload; each is held in memory while it is sent."""
STAGING_PREFIX = ".ketch-put-"

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_LOGGED_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where one account's objects live: a bucket, a prefix in it, and how to reach it.

    Without keys, obstore finds credentials itself (``AWS_*`` variables, an instance or
    container role). The keys are left out of ``repr`` and never logged.
    """

    bucket: str
    prefix: str = ""
    """The account's folder in the bucket, without a leading ``/``; ``""`` for all of it."""
    endpoint: str | None = None
    """``None`` for AWS itself; the URL of any other S3-compatible store."""
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    allow_http: bool = False
    """Plain HTTP to the endpoint: only for a store on loopback or a trusted network."""

    def __post_init__(self) -> None:
        if not self.bucket or "/" in self.bucket:
            raise InvalidInput(f"S3 bucket {self.bucket!r} must be a bucket name without '/'")
        if self.prefix.startswith("/"):
            raise InvalidInput(f"S3 prefix {self.prefix!r} must not start with '/'")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise InvalidInput(
                "give both an S3 access key id and its secret, or neither (to use the "
                "environment's credentials)"
            )

    @property
    def root(self) -> str:
        """The path every key is appended to: ``"<prefix>/"``, or ``""`` with no prefix."""
        prefix = self.prefix.strip("/")
        return f"{prefix}/" if prefix else ""

    def describe(self) -> str:
        """Bucket and endpoint for messages; never the credentials."""
        endpoint = self.endpoint or f"the AWS endpoint of {self.region}"
        return f"S3 bucket {self.bucket!r} at {endpoint}"


class _StaticCredentials:
    """Explicit keys as an obstore credential provider.

    obstore combines explicitly given keys with an ``AWS_SESSION_TOKEN`` from the
    environment; a provider's credentials are used exactly as returned.
    """

    __slots__ = ("_access_key_id", "_secret_access_key")

    def __init__(self, access_key_id: str, secret_access_key: str) -> None:
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key

    def __call__(self) -> S3Credential:
        return {
            "access_key_id": self._access_key_id,
            "secret_access_key": self._secret_access_key,
            "token": None,
            "expires_at": None,
        }

    def __repr__(self) -> str:
        return "_StaticCredentials(***)"


class S3Backend:
    """One account's objects at ``<prefix>/<key>`` in an S3 bucket.

    Writes are spooled to ``staging_dir`` (created ``0700``; each file ``0600`` and
    removed when the write ends), so the folder needs room for the largest object being
    uploaded at any one time.
    """

    def __init__(self, location: S3Location, *, staging_dir: Path) -> None:
        self.location = location
        self.staging_dir = staging_dir
        self._root = location.root
        self._store = _build_store(location)

    def __repr__(self) -> str:
        return f"S3Backend({self.location!r})"

    # -- the interface ----------------------------------------------------------------

    def put(
        self, key: str, chunks: Iterable[bytes], *, expected_sha256: str | None = None
    ) -> StoredObject:
        fd, staged = self._new_staging_file()
        try:
            size, sha256 = write_hashed(fd, chunks, sync=False)  # a spool: lost with a crash anyway
            if expected_sha256 is not None and expected_sha256.lower() != sha256:
                raise ChecksumMismatch(
                    f"the content of {key!r} hashes to sha256 {sha256}, not the declared "
                    f"{expected_sha256}; nothing was stored"
                )
            with self._translated_errors("upload", key):
                obstore.put(
                    self._store,
                    self._path(key),
                    staged,
                    attributes={SHA256_METADATA: sha256},
                    chunk_size=UPLOAD_PART_BYTES,
                    max_concurrency=UPLOAD_CONCURRENCY,
                )
        finally:
            staged.unlink(missing_ok=True)
        return StoredObject(key, size, sha256, self._modified_after_put(key))

    def open(self, key: str) -> tuple[StoredObject, Iterator[bytes]]:
        with self._translated_errors("read", key):
            result = obstore.get(self._store, self._path(key))
        return self._describe(key, result.meta, result.attributes), self._chunks(key, result)

    def head(self, key: str) -> StoredObject:
        # A HEAD request through ``get`` rather than ``obstore.head``: only ``get``
        # returns the user metadata that holds the checksum.
        with self._translated_errors("look up", key):
            result = obstore.get(self._store, self._path(key), options={"head": True})
        return self._describe(key, result.meta, result.attributes)

    def list_objects(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> list[StoredObject]:
        """S3 lists keys in UTF-8 byte order, so the first ``limit`` matches are the page.

        Only the folder holding ``prefix`` (up to its last ``/``) is listed, under the
        account's own ``<prefix>/``, so a sibling account's ``<prefix>b/...`` never shows.
        """
        if limit <= 0:
            return []
        folder = prefix[: prefix.rfind("/") + 1]
        found: list[StoredObject] = []
        with self._translated_errors("list", prefix):
            pages = obstore.list(
                self._store,
                (self._root + folder) or None,
                offset=self._root + after if after else None,
                chunk_size=min(limit, 1000),
            )
            for page in pages:
                for meta in page:
                    key = meta["path"].removeprefix(self._root)
                    if key.startswith(prefix) and key > after:
                        found.append(StoredObject(key, meta["size"], None, _utc(meta)))
                        if len(found) == limit:
                            return found
                    elif key > prefix and not key.startswith(prefix):
                        return found  # sorted: every later key is past the prefix too
        return found

    def delete(self, key: str) -> bool:
        path = self._path(key)
        with self._translated_errors("delete", key):
            try:
                # S3 deletes succeed whether or not there was an object.
                obstore.head(self._store, path)
            except FileNotFoundError:
                return False
            obstore.delete(self._store, path)
        return True

    # -- helpers ----------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return self._root + key

    def _new_staging_file(self) -> tuple[int, Path]:
        """An open descriptor and the path of a new ``0600`` file with a unique name."""
        self.staging_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=".part", dir=self.staging_dir)
        return fd, Path(name)

    def _modified_after_put(self, key: str) -> datetime:
        """The store's time of the new object (a PUT does not return it)."""
        with self._translated_errors("look up", key):
            try:
                return _utc(obstore.head(self._store, self._path(key)))
            except FileNotFoundError:
                # Deleted by someone else since our PUT, which did happen just now.
                return datetime.now(UTC)

    def _describe(self, key: str, meta: ObjectMeta, attributes: Mapping[str, str]) -> StoredObject:
        sha256 = attributes.get(SHA256_METADATA)
        if sha256 is not None and not _HEX_SHA256.fullmatch(sha256):
            sha256 = None  # another tool's metadata under the same name
        return StoredObject(key, meta["size"], sha256, _utc(meta))

    def _chunks(self, key: str, result: GetResult) -> Iterator[bytes]:
        """The body in chunks of at most ``CHUNK_BYTES`` (obstore's may be larger)."""
        with self._translated_errors("read", key):
            for buffer in result.stream(min_chunk_size=CHUNK_BYTES):
                if len(buffer) <= CHUNK_BYTES:
                    yield buffer
                    continue
                for start in range(0, len(buffer), CHUNK_BYTES):
                    yield buffer[start : start + CHUNK_BYTES]

    @contextmanager
    def _translated_errors(self, action: str, key: str) -> Iterator[None]:
        """obstore's errors as ketch's: a missing object, a refused key, or the store
        being unavailable (network, credentials, permissions, server errors)."""
        try:
            yield
        except FileNotFoundError:
            raise ObjectMissing(f"no object {key!r}") from None
        except InvalidPathError:
            raise InvalidInput(f"the S3 store does not accept the key {key!r}") from None
        except ObstoreError as exc:
            self._log_failure(action, key, exc)
            raise BackendUnavailable(
                f"{self.location.describe()} is unavailable: {action} of {key!r} failed "
                f"({type(exc).__name__}); check that the store is reachable and that the "
                "account's bucket, endpoint and credentials are right"
            ) from None

    def _log_failure(self, action: str, key: str, exc: ObstoreError) -> None:
        # obstore's text ends in a long "Debug source" dump; the summary before it says it.
        text = str(exc).split("\n\nDebug source:")[0][:_LOGGED_ERROR_CHARS]
        for credential in (self.location.access_key_id, self.location.secret_access_key):
            if credential:
                text = text.replace(credential, "***")
        logger.warning("S3 %s of %r failed in %s: %s", action, key, self.location.describe(), text)


def _build_store(location: S3Location) -> S3Store:
    config: S3Config = {"region": location.region}
    if location.endpoint is not None:
        config["endpoint"] = location.endpoint
    client_options: ClientConfig = {
        "allow_http": location.allow_http,
        "connect_timeout": CONNECT_TIMEOUT,
        "timeout": TRANSFER_TIMEOUT,
    }
    retry_config: RetryConfig = {"max_retries": MAX_RETRIES, "retry_timeout": RETRY_TIMEOUT}
    credentials = None
    if location.access_key_id is not None and location.secret_access_key is not None:
        credentials = _StaticCredentials(location.access_key_id, location.secret_access_key)
    try:
        return S3Store(
            location.bucket,
            config=config,
            client_options=client_options,
            retry_config=retry_config,
            credential_provider=credentials,
        )
    except ObstoreError as exc:
        raise InvalidInput(
            f"{location.describe()} is not a usable S3 location ({type(exc).__name__}); "
            "check the endpoint URL and region"
        ) from None


def _utc(meta: ObjectMeta) -> datetime:
    modified = meta["last_modified"]
    if modified.tzinfo is None:
        return modified.replace(tzinfo=UTC)
    return modified.astimezone(UTC)
