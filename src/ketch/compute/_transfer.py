"""Moving a job's files between the artifact store and its job root (private to the runner).

Every URI is checked against the job's own account before a byte moves. The API checks
it at submission, but a row can change behind the API's back (a restore, a manual fix, a
bug), and a job reading another account's data would be a breach, not a failure.

Each chunk moved calls ``tick``, the runner's lease keeper: a download of many gigabytes
outlasts any lease, and a controller that lost its job must stop copying at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ketch.artifact_store import ArtifactStore, list_artifacts, open_artifact, put_artifact
from ketch.core.artifact_uri import ArtifactUri, parse_uri
from ketch.core.errors import Forbidden, InvalidInput, NotFound
from ketch.core.files import CHUNK_BYTES, contained_path

Tick = Callable[[], None]
PAGE = 1000


def own_uri(text: str, account: str, *, what: str, allow_prefix: bool = False) -> ArtifactUri:
    """``text`` parsed; :class:`Forbidden` if it lies in an account other than ``account``
    (another account's data only through an explicit share, which a later issue brings)."""
    uri = parse_uri(text, allow_prefix=allow_prefix)
    if uri.account != account:
        raise Forbidden(
            f"{what} {text} is in another account ('{uri.account}'); a job reads and writes "
            f"only its own account's artifacts ({account})"
        )
    return uri


def download_object(store: ArtifactStore, uri: ArtifactUri, destination: Path, tick: Tick) -> None:
    """The object at ``uri`` streamed into a new file ``destination`` (0600)."""
    _, chunks = open_artifact(store, uri.account, uri.key)
    destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as file:
        for chunk in chunks:
            file.write(chunk)
            tick()


def download_channel(
    store: ArtifactStore, uri: ArtifactUri, folder: Path, tick: Tick, *, channel: str
) -> int:
    """An input channel into ``folder``; returns how many objects arrived.

    An object URI brings that one file, named by its last key segment. A prefix (a key
    ending in ``/``, or a key with no object of that name, as SageMaker's ``S3Prefix``)
    brings every object below it, keeping the layout below the prefix.
    """
    if uri.key and not uri.key.endswith("/"):
        try:
            download_object(store, uri, folder / uri.key.rsplit("/", 1)[-1], tick)
            return 1
        except NotFound:
            uri = ArtifactUri(uri.account, uri.key + "/")
    count = download_prefix(store, uri, folder, tick)
    if count == 0:
        raise InvalidInput(f"input channel '{channel}': no artifact at or below {uri}")
    return count


def download_prefix(store: ArtifactStore, prefix: ArtifactUri, folder: Path, tick: Tick) -> int:
    """Every object below ``prefix`` into ``folder``, keeping the layout below it; returns
    how many (none is not an error here)."""
    count = 0
    for key in _keys_below(store, prefix):
        destination = contained_path(folder, key[len(prefix.key) :])
        download_object(store, ArtifactUri(prefix.account, key), destination, tick)
        count += 1
    return count


def as_prefix(uri: ArtifactUri) -> ArtifactUri:
    """``uri`` as a folder: its key ends in ``/`` (or is empty, the account's root)."""
    if uri.key == "" or uri.key.endswith("/"):
        return uri
    return ArtifactUri(uri.account, uri.key + "/")


def _keys_below(store: ArtifactStore, prefix: ArtifactUri) -> Iterator[str]:
    after = ""
    while True:
        page = list_artifacts(store, prefix.account, prefix.key, after=after, limit=PAGE)
        yield from (artifact.key for artifact in page)
        if len(page) < PAGE:
            return
        after = page[-1].key


def upload_file(store: ArtifactStore, uri: ArtifactUri, path: Path, tick: Tick) -> str:
    """``path`` stored at ``uri`` (replacing any object); returns the stored URI."""
    return put_artifact(store, uri.account, uri.key, _chunks(path, tick)).uri


def upload_folder(store: ArtifactStore, prefix: ArtifactUri, folder: Path, tick: Tick) -> int:
    """Every file below ``folder`` stored under ``prefix``, keeping the layout.

    The job could write anything there: a link (which could point at any file the server
    can read) is refused with :class:`InvalidInput`, never followed.
    """
    count = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in sorted(dirs + files):
            path = base / name
            if path.is_symlink():
                raise InvalidInput(f"output {folder.name}/ holds a link ({name}); only files")
        for name in sorted(files):
            path = base / name
            if not path.is_file():
                continue  # FIFOs, sockets: nothing to upload
            relative = path.relative_to(folder).as_posix()
            upload_file(store, prefix.child(relative), path, tick)
            count += 1
    return count


def _chunks(path: Path, tick: Tick) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            tick()
            yield chunk
