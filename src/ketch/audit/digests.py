"""Signed digests: periodic, signed checkpoints of the chain, in the database and as files.

A digest states "records ``first_seq``..``last_seq`` were written since the previous
digest, record ``last_seq`` has hash ``head_hash``, and the previous digest has hash
``previous_digest_hash``", at ``time``, signed with the Ed25519 key. Digests are
written every period even when nothing was recorded, so a verifier can tell a quiet
trail from one whose newest records (or newest digests) were deleted.

Each digest is stored as a row and as a JSON file under ``$KETCH_HOME/audit/digests``
(later the artifact store). The file is written and fsynced *before* the row commits:
a crash in between leaves a file without a row, which the next digest (same number,
different hash, so a different file name) supersedes, and verification accepts such a
file only while what it signed still matches the records.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from ketch.audit.chain import GENESIS_HASH, canonical_json, canonical_time, sha256_hex
from ketch.audit.service import lock_head
from ketch.audit.signing import (
    DigestSigner,
    load_or_create_signer,
    load_public_key,
    public_key_path,
)
from ketch.audit.tables import AuditDigestRow
from ketch.core.errors import InternalError
from ketch.core.files import write_private_json
from ketch.core.settings import KetchSettings
from ketch.store.session import UnitOfWork, UnitOfWorkFactory

logger = logging.getLogger(__name__)

DIGEST_VERSION = 1
RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Digest:
    """One signed digest, as stored in its row and its file."""

    id: int
    time: datetime
    first_seq: int
    last_seq: int
    head_hash: str
    previous_digest_hash: str
    key_id: str
    digest_hash: str
    signature: str

    def payload(self) -> bytes:
        """The bytes that are hashed and signed: the file's fields but the hash and signature."""
        signed = self.to_json()
        del signed["digest_hash"], signed["signature"]
        return canonical_json(signed)

    @property
    def file_name(self) -> str:
        # The hash in the name keeps a superseded file (see the module docstring).
        return f"{self.id:010d}-{self.digest_hash[:16]}.json"

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"version": DIGEST_VERSION, **asdict(self)}
        data["time"] = canonical_time(self.time)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Digest:
        """Parse a digest file's content; ``ValueError`` when it is not one."""
        if not isinstance(data, dict) or data.get("version") != DIGEST_VERSION:
            raise ValueError("not a version 1 digest")
        try:
            return cls(
                id=int(data["id"]),
                time=datetime.fromisoformat(str(data["time"])),
                first_seq=int(data["first_seq"]),
                last_seq=int(data["last_seq"]),
                head_hash=str(data["head_hash"]),
                previous_digest_hash=str(data["previous_digest_hash"]),
                key_id=str(data["key_id"]),
                digest_hash=str(data["digest_hash"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a digest field is missing or malformed: {exc}") from exc

    @classmethod
    def from_row(cls, row: AuditDigestRow) -> Digest:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def newest_digest(uow: UnitOfWork) -> AuditDigestRow | None:
    query = select(AuditDigestRow).order_by(AuditDigestRow.id.desc()).limit(1)
    return uow.session.scalars(query).first()


def write_digest(uow: UnitOfWork, signer: DigestSigner, digest_dir: Path) -> Digest:
    """Sign and store a digest of the records since the previous digest (maybe none).

    Locks the audit head, so the digest sees a settled chain and digests are numbered
    without gaps even when several processes write them.
    """
    head = lock_head(uow)
    previous = newest_digest(uow)
    unsigned = Digest(
        id=previous.id + 1 if previous else 1,
        time=uow.clock.now(),
        first_seq=previous.last_seq + 1 if previous else 1,
        last_seq=head.last_seq,
        head_hash=head.last_hash,
        previous_digest_hash=previous.digest_hash if previous else GENESIS_HASH,
        key_id=signer.key_id,
        digest_hash="",
        signature="",
    )
    payload = unsigned.payload()
    digest = replace(unsigned, digest_hash=sha256_hex(payload), signature=signer.sign(payload))
    write_private_json(digest_dir / digest.file_name, digest.to_json())
    uow.session.add(AuditDigestRow(**asdict(digest)))
    uow.session.flush()
    logger.info(
        "audit digest %d signed: records %d-%d", digest.id, digest.first_seq, digest.last_seq
    )
    return digest


def read_digest_files(digest_dir: Path) -> list[tuple[Path, Digest | None]]:
    """Every digest file, parsed; ``None`` for a file that is not a digest any more."""
    found: list[tuple[Path, Digest | None]] = []
    for path in sorted(digest_dir.glob("*.json")) if digest_dir.is_dir() else []:
        try:
            found.append((path, Digest.from_json(json.loads(path.read_text()))))
        except (ValueError, UnicodeDecodeError):
            found.append((path, None))
    return found


@dataclass
class AuditTrail:
    """The audit trail's parts outside the database (key, digest files) and its timing.

    The signing key is loaded, or generated, on first use.
    """

    key_path: Path
    digest_dir: Path
    digest_interval: timedelta
    _signer: DigestSigner | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: KetchSettings) -> AuditTrail:
        audit_home = settings.home / "audit"
        return cls(
            key_path=settings.audit.signing_key_path or audit_home / "signing-key.pem",
            digest_dir=audit_home / "digests",
            digest_interval=timedelta(seconds=settings.audit.digest_interval_seconds),
        )

    @property
    def max_digest_age(self) -> timedelta:
        """Older than this, the newest digest is stale: two periods passed without one."""
        return 2 * self.digest_interval

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key digests are verified with: the public half, never the secret.

        Only when no key exists at all (nothing can have been signed yet) is the pair
        created, as the first digest would.
        """
        path = public_key_path(self.key_path)
        if path.exists():
            return load_public_key(path)
        if self.key_path.exists():
            raise InternalError(
                f"the audit public key {path} is missing while the signing key exists; "
                "restore it from a backup (digests cannot be verified without it)"
            )
        return self.signer.public_key

    @property
    def signer(self) -> DigestSigner:
        with self._lock:
            if self._signer is None:
                self._signer = load_or_create_signer(self.key_path)
            return self._signer


class DigestWriter:
    """The controller loop that writes a digest every ``digest_interval``.

    Every server process runs one; the check for "is a digest due?" is repeated under
    the head lock, so several processes still write one digest per period.
    """

    def __init__(self, uow: UnitOfWorkFactory, trail: AuditTrail) -> None:
        self._uow = uow
        self._trail = trail

    def write_now(self) -> Digest:
        with self._uow(write=True) as uow:
            return write_digest(uow, self._trail.signer, self._trail.digest_dir)

    def tick(self) -> float:
        """Write a digest if one is due; return the seconds until the next one is."""
        with self._uow() as uow:
            wait = self._due_in(uow)
        if wait <= timedelta(0):
            with self._uow(write=True) as uow:
                lock_head(uow)
                if self._due_in(uow) <= timedelta(0):
                    write_digest(uow, self._trail.signer, self._trail.digest_dir)
                wait = self._due_in(uow)
        return max(wait.total_seconds(), 0.0)

    def _due_in(self, uow: UnitOfWork) -> timedelta:
        previous = newest_digest(uow)
        if previous is None:
            return timedelta(0)
        return previous.time + self._trail.digest_interval - uow.clock.now()

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; a failed tick is logged and retried."""
        delay = 0.0
        while not stop.wait(delay):
            try:
                delay = self.tick()
            except Exception:
                logger.exception("writing the audit digest failed; retrying")
                delay = min(RETRY_SECONDS, self._trail.digest_interval.total_seconds())

    @contextmanager
    def running(self) -> Iterator[None]:
        """Write a start-up digest, then run the loop in a thread until the block ends."""
        self.write_now()
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="audit-digests", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)
