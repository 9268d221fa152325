"""Ed25519 signatures on digests, with the private key kept outside the database.

Someone who can rewrite the database can recompute every record hash; they cannot
sign a digest without the key file. The key is generated on first use into a file
with mode 0600 (created under a temporary name and hard-linked into place, so two
processes starting at once end up with one key, never a half-written one), and the
public key is written next to it for verifiers that should not hold the private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import threading
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)


class DigestSigner:
    """Signs digest payloads; ``key_id`` names the key in every digest it signs."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._private_key.sign(payload)).decode()


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint: the first 16 hex digits of SHA-256 over the raw key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_valid(public_key: Ed25519PublicKey, payload: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def public_key_path(private_key_path: Path) -> Path:
    """``signing-key.pem`` -> ``signing-key.pub.pem``."""
    return private_key_path.with_name(f"{private_key_path.stem}.pub.pem")


def load_or_create_signer(path: Path) -> DigestSigner:
    """The signer for the key at ``path``, generating the key pair if there is none.

    Refuses a private key file that group or others may read, as ssh does.
    """
    if not path.exists():
        _create_private_key(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(
            f"the audit signing key {path} has mode {mode:o}; other users must not read "
            f"it: run `chmod 600 {path}`"
        )
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"the audit signing key {path} is not an Ed25519 private key")
    signer = DigestSigner(key)
    _write_public_key(public_key_path(path), signer.public_key)
    return signer


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def _create_private_key(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process created the key first; everyone uses that one
    finally:
        temporary.unlink(missing_ok=True)


def _write_public_key(path: Path, public_key: Ed25519PublicKey) -> None:
    pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if path.exists() and path.read_bytes() == pem:
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(pem)
    temporary.chmod(0o644)
    os.replace(temporary, path)
