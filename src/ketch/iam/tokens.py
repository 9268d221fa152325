"""API token format: ``ketch_<prefix>_<secret>``.

The prefix (8 characters) identifies the token in listings and logs; only a SHA-256
of the secret is stored. The secret carries 256 bits of entropy, so a fast hash is
enough (as for GitHub or Stripe keys); passwords use argon2id instead.
"""

from __future__ import annotations

import hmac
import secrets
import string
from dataclasses import dataclass

from ketch.core.ids import hash_secret

_ALPHABET = string.ascii_letters + string.digits
PREFIX_LENGTH = 8


@dataclass(frozen=True, slots=True)
class TokenParts:
    prefix: str
    secret: str

    def __str__(self) -> str:
        return f"ketch_{self.prefix}_{self.secret}"


def generate_token() -> TokenParts:
    """A new random token."""
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(PREFIX_LENGTH))
    return TokenParts(prefix=prefix, secret=secrets.token_urlsafe(32))


def parse_token(text: str) -> TokenParts | None:
    """Split a presented token, or ``None`` if it does not have the ketch shape."""
    head, sep, rest = text.partition("_")
    prefix, sep2, secret = rest.partition("_")
    if head != "ketch" or not sep or not sep2 or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    return TokenParts(prefix=prefix, secret=secret)


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
