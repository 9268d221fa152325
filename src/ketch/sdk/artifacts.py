"""``ketch.artifacts``: the artifact store in one call, without making a client first.

::

    import ketch

    ketch.artifacts.upload("model/", "ketch://fraud-dev/models/v3/")
    ketch.artifacts.download("ketch://fraud-dev/models/v3/", "model-copy/")

Each function builds a :class:`~ketch.sdk.client.Client` the way ``ketch.Client()``
does (``KETCH_URL`` / ``KETCH_TOKEN``, else the credentials ``ketch login`` stored),
uses it for that one call and closes it; pass ``client=`` to use one of your own. The
functions are those of :class:`~ketch.sdk.resources.artifacts.Artifacts`, which
documents them in full.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TypeVar

from ketch.schemas.artifacts import Artifact
from ketch.sdk.client import Client
from ketch.sdk.resources.artifacts import (
    Artifacts,
    ChecksumMismatch,
    PathLike,
    Progress,
    UriLike,
)

__all__ = [
    "ChecksumMismatch",
    "Progress",
    "delete",
    "describe",
    "download",
    "list",
    "upload",
]

T = TypeVar("T")


def upload(
    path: PathLike,
    uri: UriLike,
    *,
    progress: Progress | None = None,
    client: Client | None = None,
) -> builtins.list[Artifact]:
    """Upload a file to ``uri``, or every regular file below a directory under it."""
    return _with_client(client, lambda artifacts: artifacts.upload(path, uri, progress=progress))


def download(
    uri: UriLike,
    path: PathLike,
    *,
    progress: Progress | None = None,
    client: Client | None = None,
) -> builtins.list[Artifact]:
    """Download one object to ``path``, or everything under a prefix (``.../``) into it."""
    return _with_client(client, lambda artifacts: artifacts.download(uri, path, progress=progress))


def list(uri: UriLike, *, client: Client | None = None) -> builtins.list[Artifact]:
    """Every object whose key starts with the URI's key, by key (all pages)."""
    return _with_client(client, lambda artifacts: builtins.list(artifacts.iter_all(uri)))


def describe(uri: UriLike, *, client: Client | None = None) -> Artifact:
    """One object's size, checksum and time, without downloading it."""
    return _with_client(client, lambda artifacts: artifacts.describe(uri))


def delete(uri: UriLike, *, client: Client | None = None) -> None:
    """Delete one object."""
    _with_client(client, lambda artifacts: artifacts.delete(uri))


def _with_client(client: Client | None, call: Callable[[Artifacts], T]) -> T:
    """``call`` on the caller's client (left open) or on a default one, closed after."""
    if client is not None:
        return call(client.artifacts)
    with Client() as default:
        return call(default.artifacts)
