"""Password hashing with argon2id, and a verify that costs the same for unknown users."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Verified against when the user does not exist, so both failures take the same time.
_DUMMY_HASH = _HASHER.hash("ketch-dummy-password-for-timing")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` with a fresh salt."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; ``stored_hash=None`` burns the same time and fails."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
