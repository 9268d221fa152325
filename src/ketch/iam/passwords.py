"""Password hashing with argon2id, and a verify that costs the same for unknown users."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ketch.core.errors import InvalidInput

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


MIN_PASSWORD_LENGTH = 12
PASSWORD_RULE = (
    f"at least {MIN_PASSWORD_LENGTH} characters, with at least three of: lowercase letters, "
    "uppercase letters, digits, other characters; not containing the user name"
)


def check_password_strength(password: str, *, username: str) -> None:
    """Raise :class:`InvalidInput` unless ``password`` meets :data:`PASSWORD_RULE`."""
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if (
        len(password) < MIN_PASSWORD_LENGTH
        or classes < 3
        or username.lower() in password.lower()
        or len(password) > 1024
    ):
        raise InvalidInput(f"the password is too weak: use {PASSWORD_RULE}")
