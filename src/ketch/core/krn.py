"""Resource names: the KRN format and the rules every name must follow.

A KRN is ``krn:ketch:<account>:<type>/<name>``. Resources that belong to the
organisation rather than to one account (OUs, accounts themselves, users) leave the
account part empty: ``krn:ketch::account/fraud-dev``, ``krn:ketch::ou/teams/fraud``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ketch.core.errors import InvalidInput

KRN_PREFIX = "krn:ketch:"

ACCOUNT_ID_RULE = (
    "3 to 40 characters: lowercase letters a-z, digits and single hyphens, "
    "starting with a letter and ending with a letter or digit"
)
ACCOUNT_ID_PATTERN = r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){2,39}$"
_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)

NAME_RULE = "1 to 63 characters: letters, digits, '.', '_' and '-', starting with a letter or digit"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)

RESOURCE_TYPE_RULE = "lowercase letters and hyphens, 2 to 32 characters"
_RESOURCE_TYPE = re.compile(r"^[a-z][a-z-]{1,31}$")

RESERVED_NAMES = frozenset(
    {"root", "admin", "system", "ketch", "aws", "all", "default", "none", "null", "self", "me"}
)
"""Words that would read as something else in a KRN, a URL or a policy."""


def _describe(value: str) -> str:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return repr(shown)


def _reject_common(kind: str, value: object, rule: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{kind} must be a string ({rule})")
    if value == "":
        raise InvalidInput(f"{kind} must not be empty ({rule})")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise InvalidInput(f"{kind} must not contain control characters ({rule})")
    if "/" in value or "\\" in value:
        raise InvalidInput(f"{kind} {_describe(value)} must not contain path separators ({rule})")
    if value in {".", ".."}:
        raise InvalidInput(f"{kind} {_describe(value)} is not allowed ({rule})")
    return value


def validate_account_id(value: object) -> str:
    """Return ``value`` if it is a valid account id, else raise :class:`InvalidInput`."""
    text = _reject_common("account id", value, ACCOUNT_ID_RULE)
    if not _ACCOUNT_ID.fullmatch(text):
        raise InvalidInput(f"account id {_describe(text)} is invalid: use {ACCOUNT_ID_RULE}")
    if text in RESERVED_NAMES:
        raise InvalidInput(f"account id {text!r} is a reserved word; choose another name")
    return text


def validate_name(value: object, *, kind: str = "name") -> str:
    """Return ``value`` if it is a valid resource name, else raise :class:`InvalidInput`."""
    text = _reject_common(kind, value, NAME_RULE)
    if not _NAME.fullmatch(text):
        raise InvalidInput(f"{kind} {_describe(text)} is invalid: use {NAME_RULE}")
    if text.lower() in RESERVED_NAMES:
        raise InvalidInput(f"{kind} {text!r} is a reserved word; choose another name")
    return text


def split_ou_path(path: str) -> list[str]:
    """Split ``teams/fraud`` into validated OU names; ``""`` or ``"/"`` is the root."""
    if not isinstance(path, str):
        raise InvalidInput("OU path must be a string such as 'teams/fraud'")
    stripped = path.strip("/")
    if stripped == "":
        return []
    return [validate_name(part, kind="OU name") for part in stripped.split("/")]


@dataclass(frozen=True, slots=True)
class Krn:
    """A parsed resource name."""

    account: str
    resource_type: str
    name: str

    def __str__(self) -> str:
        return f"{KRN_PREFIX}{self.account}:{self.resource_type}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> Krn:
        """Parse ``krn:ketch:<account>:<type>/<name>``; raise :class:`InvalidInput` if malformed."""
        expected = "expected krn:ketch:<account>:<type>/<name>"
        if not isinstance(text, str) or not text.startswith(KRN_PREFIX):
            raise InvalidInput(f"not a KRN: {_describe(str(text))}; {expected}")
        account, sep, rest = text[len(KRN_PREFIX) :].partition(":")
        resource_type, slash, name = rest.partition("/")
        if not sep or not slash or not name:
            raise InvalidInput(f"not a KRN: {_describe(text)}; {expected}")
        if account:
            validate_account_id(account)
        if not _RESOURCE_TYPE.fullmatch(resource_type):
            raise InvalidInput(f"KRN resource type {resource_type!r} must be {RESOURCE_TYPE_RULE}")
        for part in name.split("/"):
            validate_name(part, kind="KRN name part")
        return cls(account, resource_type, name)


def krn(account: str, resource_type: str, name: str) -> str:
    """Format a KRN string."""
    return str(Krn(account, resource_type, name))
