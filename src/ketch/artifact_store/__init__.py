"""The artifact store service: per-account object storage behind ``ketch://`` URIs.

Named ``artifact_store`` rather than ``artifacts`` because ``ketch.artifacts`` is the
SDK's (``ketch.artifacts.upload(...)``). Other services use only these names.
"""

from ketch.artifact_store.backends import ChecksumMismatch, ObjectBackend, StoredObject
from ketch.artifact_store.service import (
    delete_artifact,
    describe_artifact,
    list_artifacts,
    open_artifact,
    put_artifact,
)
from ketch.artifact_store.store import ArtifactStore

__all__ = [
    "ArtifactStore",
    "ChecksumMismatch",
    "ObjectBackend",
    "StoredObject",
    "delete_artifact",
    "describe_artifact",
    "list_artifacts",
    "open_artifact",
    "put_artifact",
]
