"""Which backend holds an account's artifacts, chosen from settings and kept per account."""

from __future__ import annotations

import threading
from pathlib import Path

from ketch.artifact_store.backends import ObjectBackend
from ketch.artifact_store.backends.local import LocalBackend
from ketch.core.krn import validate_account_id
from ketch.core.settings import ArtifactSettings, S3StorageSettings


class ArtifactStore:
    """One per server process: builds each account's backend on first use.

    Local: ``<local_root>/<account>/``. S3: ``<bucket>/<prefix>/<account>/``; uploads are
    spooled under ``<home>/tmp/artifact-uploads`` first, to be hashed before they are sent.
    """

    def __init__(self, settings: ArtifactSettings, home: Path) -> None:
        self.settings = settings
        self.local_root = settings.local_root or home / "artifacts"
        self.staging = home / "tmp" / "artifact-uploads"
        self._backends: dict[str, ObjectBackend] = {}
        self._lock = threading.Lock()

    def backend(self, account: str) -> ObjectBackend:
        cached = self._backends.get(account)
        if cached is not None:
            return cached
        with self._lock:
            if account not in self._backends:
                self._backends[account] = self._build(account)
            return self._backends[account]

    def _build(self, account: str) -> ObjectBackend:
        validate_account_id(account)  # it becomes a folder name or a key prefix
        override = self.settings.accounts.get(account)
        kind = override.backend if override else self.settings.backend
        if kind == "local":
            return LocalBackend(self.local_root / account)
        s3 = override.s3 if override and override.s3 else self.settings.s3
        assert s3 is not None  # settings validation requires it for "s3"
        return _s3_backend(s3, account, self.staging)


def _s3_backend(s3: S3StorageSettings, account: str, staging: Path) -> ObjectBackend:
    # Imported here: obstore loads a native library the local default never needs.
    from ketch.artifact_store.backends.s3 import S3Backend, S3Location

    secret = s3.secret_access_key.get_secret_value() if s3.secret_access_key else None
    location = S3Location(
        bucket=s3.bucket,
        prefix=f"{s3.prefix}/{account}" if s3.prefix else account,
        endpoint=s3.endpoint,
        region=s3.region,
        access_key_id=s3.access_key_id,
        secret_access_key=secret,
        allow_http=s3.allow_http,
    )
    return S3Backend(location, staging_dir=staging)
