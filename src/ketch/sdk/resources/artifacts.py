"""``client.artifacts``: files and folders to and from an account's artifact store.

Bodies stream both ways in :data:`CHUNK_BYTES` pieces; nothing holds a whole object in
memory, so objects of many GiB are fine. An upload hashes each file first and sends the
SHA-256 with it (the server refuses bytes that hash otherwise, storing nothing). A
download goes to a temporary file beside its destination, is hashed as it arrives, and
is renamed into place only if it matches what the server recorded.

Keys that come back from the server are never trusted as local paths: each must stay
inside the destination folder (:func:`ketch.core.files.contained_path`), checked before anything is
written.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from ketch.core.artifact_uri import ArtifactUri, parse_uri, validate_key
from ketch.core.errors import (
    BackendUnavailable,
    InternalError,
    InvalidInput,
    KetchError,
    NotFound,
)
from ketch.core.files import CHUNK_BYTES, contained_path, write_hashed
from ketch.schemas.artifacts import SHA256_HEADER, Artifact
from ketch.schemas.common import Page
from ketch.sdk._pagination import iterate

if TYPE_CHECKING:
    from ketch.sdk.client import Client

UPLOAD_TIMEOUT = httpx.Timeout(30.0, read=3600.0)
"""After the last byte the server may still be storing the object (spooled to S3): the
answer may take minutes for a large one, and waiting is cheaper than sending it again."""
logger = logging.getLogger(__name__)

PREFIX = "/api/v1"
BINARY = "application/octet-stream"

Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``, called after every chunk of a transfer.

The total covers every file of the call and is known before the first byte moves. When
a retry sends a file again from its start, ``done`` goes back by what had been sent.
"""
UriLike = str | ArtifactUri
PathLike = str | os.PathLike[str]


class ChecksumMismatch(InternalError):
    """Downloaded bytes differ from what the server recorded; nothing was written."""


class Artifacts:
    """Objects in an account's artifact store, addressed as ``ketch://<account>/<key>``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    # -- upload ------------------------------------------------------------------------

    def upload(
        self, path: PathLike, uri: UriLike, *, progress: Progress | None = None
    ) -> builtins.list[Artifact]:
        """Upload a file to ``uri``, or every regular file below a directory to
        ``uri/<relative path>``; returns the stored objects, in upload order.

        A file sent to a URI ending in ``/`` lands under it with its own name. Below a
        directory, symbolic links and special files are skipped with a logged warning
        (``path`` itself may be a link). Every key is checked before the first byte is
        sent. Each upload is retried from the file's start on connection errors and
        502/503/504: the checksum makes a repeat harmless.
        """
        plan = _upload_plan(Path(path), _parse(uri, allow_prefix=True))
        tally = _Tally(sum(size for _, _, size in plan), progress)
        return [self._upload_file(file, target, size, tally) for file, target, size in plan]

    def _upload_file(
        self, file: Path, target: ArtifactUri, planned: int, tally: _Tally
    ) -> Artifact:
        digest, size = _sha256_of(file)
        tally.total += size - planned  # the file changed size since it was listed
        headers = {
            "Content-Type": BINARY,
            "Content-Length": str(size),
            SHA256_HEADER: digest,
        }
        response = self._client.request(
            "PUT",
            _object_path(target),
            body=_FileBody(file, size, tally),
            headers=headers,
            retry=True,
            timeout=UPLOAD_TIMEOUT,
        )
        logger.debug("uploaded %s to %s (%d bytes)", file, target, size)
        return Artifact.model_validate(response.json())

    # -- download ----------------------------------------------------------------------

    def download(
        self, uri: UriLike, path: PathLike, *, progress: Progress | None = None
    ) -> builtins.list[Artifact]:
        """Download one object to a file, or everything under a prefix to a directory.

        One object: ``path`` is the file to write, or an existing directory (or a path
        ending in ``/``) to write it into under the key's last name. A URI ending in
        ``/`` (or an account's root, ``ketch://<account>/``) is a prefix: every object
        under it is written below ``path`` at its key relative to the prefix. Each file
        appears only once complete and verified; a key that would land outside ``path``
        is refused before anything is written.
        """
        source = _parse(uri, allow_prefix=True)
        destination = Path(path)
        tally = _Tally(0, progress)
        if _is_prefix(source):
            return self._download_prefix(source, destination, tally)
        if destination.is_dir() or os.fspath(path).endswith(("/", os.sep)):
            name = source.key.rsplit("/", 1)[-1]
            destination = _contained_or_refused(destination, name, source)
        try:
            return [self._download_object(source, destination, tally, planned=0)]
        except NotFound as exc:
            folder = ArtifactUri(source.account, f"{source.key}/")
            try:
                under = self.list(folder, max_results=1).items
            except KetchError:
                under = []  # the hint is a courtesy: the error is the object's
            if not under:
                raise
            hint = NotFound(
                f"{exc.message}, but objects exist under {folder}: "
                "end the URI with '/' to download them all",
                details=exc.details,
            )
            for name in ("status_code", "request_id"):  # set by the client on server errors
                setattr(hint, name, getattr(exc, name, None))
            raise hint from None

    def _download_prefix(
        self, prefix: ArtifactUri, root: Path, tally: _Tally
    ) -> builtins.list[Artifact]:
        if root.exists() and not root.is_dir():
            raise InvalidInput(
                f"{root} is not a directory; a prefix ({prefix}) downloads into a directory"
            )
        plan: builtins.list[tuple[Artifact, Path]] = []
        for item in self.iter_all(prefix):
            if item.account != prefix.account or not item.key.startswith(prefix.key):
                raise InvalidInput(
                    f"refusing to download {item.uri}: the server listed it under {prefix}, "
                    "which it is not; nothing was downloaded"
                )
            relative = item.key[len(prefix.key) :]
            plan.append(
                (item, _contained_or_refused(root, relative, ArtifactUri(item.account, item.key)))
            )
        _refuse_clashes(plan)
        tally.total = sum(item.size for item, _ in plan)
        return [
            self._download_object(
                ArtifactUri(item.account, item.key), target, tally, planned=item.size
            )
            for item, target in plan
        ]

    def _download_object(
        self, source: ArtifactUri, target: Path, tally: _Tally, *, planned: int
    ) -> Artifact:
        with self._client.stream("GET", _object_path(source)) as response:
            artifact = _artifact_from_headers(source, response.headers)
            tally.total += artifact.size - planned
            # A proxy may have compressed the body: Content-Length then counts other bytes.
            size = None if response.headers.get("content-encoding") else artifact.size
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                write_verified(
                    response.iter_bytes(CHUNK_BYTES),
                    target,
                    sha256=artifact.sha256,
                    size=size,
                    on_chunk=tally.add,
                    source=str(source),
                )
            except httpx.TransportError as exc:
                raise BackendUnavailable(
                    f"the download of {source} was interrupted ({type(exc).__name__}); "
                    f"nothing was written to {target}"
                ) from exc
        logger.debug("downloaded %s to %s (%d bytes)", source, target, artifact.size)
        return artifact

    # -- list, describe, delete --------------------------------------------------------

    def list(
        self, uri: UriLike, *, max_results: int | None = None, next_token: str | None = None
    ) -> Page[Artifact]:
        """One page of the objects whose keys start with the URI's key, by key.

        The prefix is a plain string: ``ketch://a/data`` lists ``data/x`` and ``database``.
        """
        prefix = _parse(uri, allow_prefix=True)
        params = {
            "prefix": prefix.key or None,
            "max_results": max_results,
            "next_token": next_token,
        }
        response = self._client.request(
            "GET", f"{PREFIX}/accounts/{prefix.account}/artifacts", params=params
        )
        return Page[Artifact].model_validate(response.json())

    def iter_all(self, uri: UriLike, *, page_size: int | None = None) -> Iterator[Artifact]:
        """Every object under the prefix (see :meth:`list`), fetching ``page_size`` per request."""
        return iterate(lambda token: self.list(uri, max_results=page_size, next_token=token))

    def describe(self, uri: UriLike) -> Artifact:
        """One object's size, checksum and time, from a HEAD request (no content moves)."""
        target = _parse_object(uri, "describe")
        path = _object_path(target)
        try:
            response = self._client.request("HEAD", path, retry=True)
        except KetchError as exc:
            if getattr(exc, "status_code", None) is None:
                raise
            # A HEAD answer has no body, so no error envelope: a GET gets the server's own
            # code and message. Its body is never read, should the object appear meanwhile.
            with self._client.stream("GET", path) as response:
                return _artifact_from_headers(target, response.headers)
        return _artifact_from_headers(target, response.headers)

    def delete(self, uri: UriLike) -> None:
        """Delete one object; :class:`~ketch.core.errors.NotFound` if there is none."""
        self._client.request("DELETE", _object_path(_parse_object(uri, "delete")))


# -- helpers ---------------------------------------------------------------------------


class _Tally:
    """Bytes done out of a total, reported to the caller's :data:`Progress`."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress

    def add(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done, self.total)


class _FileBody:
    """The first ``size`` bytes of a file, read from its start on every call.

    Handed to :meth:`Client.request` as a body factory: each attempt gets a fresh
    generator on a freshly opened file, and a retry takes back the progress it had made.
    """

    def __init__(self, file: Path, size: int, tally: _Tally) -> None:
        self._file = file
        self._size = size
        self._tally = tally
        self._sent = 0

    def __call__(self) -> Iterator[bytes]:
        if self._sent:
            self._tally.add(-self._sent)
            self._sent = 0
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        with self._file.open("rb") as handle:
            left = self._size
            while left > 0:
                chunk = handle.read(min(CHUNK_BYTES, left))
                if not chunk:
                    raise InvalidInput(
                        f"{self._file} became shorter while it was uploaded; nothing was stored"
                    )
                left -= len(chunk)
                self._sent += len(chunk)
                self._tally.add(len(chunk))
                yield chunk


def _upload_plan(source: Path, target: ArtifactUri) -> list[tuple[Path, ArtifactUri, int]]:
    """(file, its URI, its size) for every file to send, every key checked."""
    info = source.stat()  # FileNotFoundError names the path
    if stat.S_ISREG(info.st_mode):
        if _is_prefix(target):
            target = target.child(source.name)
        plan = [(source, target, info.st_size)]
    elif stat.S_ISDIR(info.st_mode):
        plan = [
            (file, target.child(relative), size) for relative, file, size in _files_below(source)
        ]
    else:
        raise InvalidInput(f"{source} is neither a regular file nor a directory; upload takes one")
    for file, uri, _ in plan:
        try:
            validate_key(uri.key)
        except InvalidInput as exc:
            raise InvalidInput(f"cannot upload {file} to {uri}: {exc.message}") from None
    return plan


def _files_below(root: Path) -> Iterator[tuple[str, Path, int]]:
    """(relative POSIX path, path, size) of every regular file below ``root``, by path.

    Links are not followed: a link could lead outside the folder the caller chose, or
    around in a loop.
    """

    def fail(error: OSError) -> None:
        raise error

    for folder, folders, names in os.walk(root, onerror=fail):
        here = Path(folder)
        folders.sort()
        for name in folders:
            if (here / name).is_symlink():
                logger.warning("skipped %s: a symbolic link (links are not followed)", here / name)
        for name in sorted(names):
            file = here / name
            info = file.lstat()
            if stat.S_ISREG(info.st_mode):
                yield file.relative_to(root).as_posix(), file, info.st_size
            elif stat.S_ISLNK(info.st_mode):
                logger.warning("skipped %s: a symbolic link (links are not followed)", file)
            else:
                logger.warning("skipped %s: not a regular file", file)


def _sha256_of(file: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with file.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _contained_or_refused(root: Path, relative: str, source: ArtifactUri) -> Path:
    try:
        return contained_path(root, relative)
    except InvalidInput as exc:
        raise InvalidInput(
            f"refusing to download {source}: {exc.message}; nothing was downloaded"
        ) from None


def _refuse_clashes(plan: list[tuple[Artifact, Path]]) -> None:
    """Refuse keys such as ``a`` and ``a/b``: one path cannot be a file and a folder."""
    keys = {target: item.key for item, target in plan}
    for item, target in plan:
        for parent in target.parents:
            if parent in keys:
                raise InvalidInput(
                    f"cannot download both {keys[parent]!r} and {item.key!r}: the first "
                    "would be a file and a folder at once; nothing was downloaded"
                )


def write_verified(
    chunks: Iterable[bytes],
    target: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    source: str | None = None,
) -> None:
    """Write ``chunks`` to ``target`` only if they hash to ``sha256`` (and number ``size``).

    The bytes go to a temporary file in ``target``'s folder (so the rename stays on one
    file system), are hashed as they are written, flushed to disk, and renamed over
    ``target`` only if they match. On a mismatch or any error, the temporary file is
    removed and ``target`` is as it was; a mismatch raises :class:`ChecksumMismatch`.
    Without a ``sha256`` (the server did not record one) only the size is checked.
    """
    what = source or str(target)
    temporary = target.parent / f".ketch-download-{secrets.token_hex(8)}.partial"
    try:
        # Created like any new file (0666 less the umask), not private as mkstemp would.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        written, digest = write_hashed(fd, chunks, on_chunk=on_chunk)
        if size is not None and written != size:
            raise ChecksumMismatch(
                f"{what}: received {written} bytes but the server announced {size}; "
                f"nothing was written to {target} (download it again)"
            )
        if sha256 is not None and digest != sha256.lower():
            raise ChecksumMismatch(
                f"{what}: the received bytes hash to {digest} but the server "
                f"recorded {sha256}; nothing was written to {target} (download it again)"
            )
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _parse(uri: UriLike, *, allow_prefix: bool = False) -> ArtifactUri:
    return parse_uri(str(uri), allow_prefix=allow_prefix)


def _parse_object(uri: UriLike, verb: str) -> ArtifactUri:
    """The URI of one object; a prefix is refused with a message saying so."""
    found = _parse(uri, allow_prefix=True)
    if _is_prefix(found):
        raise InvalidInput(
            f"{uri} is a prefix, not an object; {verb} takes one object's URI "
            "(ketch://<account>/<key>, no trailing '/')"
        )
    return _parse(uri)


def _is_prefix(uri: ArtifactUri) -> bool:
    return uri.key == "" or uri.key.endswith("/")


def _object_path(uri: ArtifactUri) -> str:
    return f"{PREFIX}/accounts/{uri.account}/artifacts/{quote(uri.key, safe='/')}"


def _artifact_from_headers(uri: ArtifactUri, headers: httpx.Headers) -> Artifact:
    """An object's description from the headers of a GET or HEAD answer."""
    try:
        size = int(headers["content-length"])
        modified = parsedate_to_datetime(headers["last-modified"])
    except (KeyError, ValueError, TypeError):
        raise InternalError(
            f"the server's answer for {uri} lacks a valid Content-Length or Last-Modified"
        ) from None
    return Artifact(
        uri=str(uri),
        account=uri.account,
        key=uri.key,
        size=size,
        sha256=headers.get(SHA256_HEADER),
        modified=modified,
    )
