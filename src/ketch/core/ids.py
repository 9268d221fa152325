"""Identifiers: internal UUIDs, request ids and opaque secrets."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


def new_id() -> str:
    """A new internal id (UUID4 as a 32-character hex string)."""
    return uuid.uuid4().hex


def new_request_id() -> str:
    """A new request id."""
    return "req-" + uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """Keep a caller's request id only when it is harmless to log; otherwise make one."""
    if candidate and _REQUEST_ID.fullmatch(candidate):
        return candidate
    return new_request_id()


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret of ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def hash_secret(secret: str) -> str:
    """SHA-256 (hex) of a high-entropy secret (token, one-time code, state) for storage.

    A fast hash suffices: these secrets are random, not guessable passwords.
    """
    return hashlib.sha256(secret.encode()).hexdigest()
