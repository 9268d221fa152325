"""Artifacts on the wire: objects in an account's artifact store."""

from __future__ import annotations

from datetime import datetime

from ketch.schemas.common import ReadModel

SHA256_HEADER = "X-Ketch-Sha256"
"""On an upload: the SHA-256 the client computed (the server refuses other content).
On a download: the SHA-256 recorded when the object was written."""


class Artifact(ReadModel):
    """One object: ``uri`` is ``ketch://<account>/<key>``."""

    uri: str
    account: str
    key: str
    size: int
    sha256: str | None = None
    modified: datetime
