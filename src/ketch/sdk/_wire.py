"""Building requests in the SDK without leaking pydantic's errors.

The SDK validates bodies before sending them. A rule broken on the client side must
raise the same :class:`~ketch.core.errors.InvalidInput` the server would have raised,
with the same ``field: problem`` message, so callers (and the CLI) handle one error tree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from ketch.core.errors import InvalidInput
from ketch.schemas.common import describe_problems

ModelT = TypeVar("ModelT", bound=BaseModel)
EnumT = TypeVar("EnumT", bound=StrEnum)


def build(model: type[ModelT], **fields: Any) -> ModelT:
    """``model(**fields)``, raising :class:`InvalidInput` instead of a pydantic error."""
    try:
        return model(**fields)
    except ValidationError as exc:
        message, problems = describe_problems(exc.errors())
        raise InvalidInput(message, details={"errors": problems}) from None


def choice(kind: type[EnumT], value: EnumT | str, *, field: str) -> EnumT:
    """``kind(value)``, raising :class:`InvalidInput` that lists the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidInput(f"{field}: {value!r} is not one of {allowed}") from None


def segment(value: str, *, field: str) -> str:
    """``value`` as one URL path segment (``/`` and the like escaped); empty is refused.

    An empty name would otherwise address the collection (``/users/`` is the list).
    """
    if not value:
        raise InvalidInput(f"{field}: must not be empty")
    return quote(value, safe="")
