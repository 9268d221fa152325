"""Shapes every route shares: the error envelope, pages, client tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from ketch.core.errors import InvalidInput

T = TypeVar("T")
V = TypeVar("V")

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100

ClientToken = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Idempotency key: repeating a create with the same token and body "
        "returns the first result; with a different body it is a conflict.",
    ),
]


def checked_by(rule: Callable[[V], V]) -> Callable[[V], V]:
    """Adapt a ``core`` validation rule (raising InvalidInput) to a pydantic validator.

    The rule's message becomes the validation message verbatim (a plain ``ValueError``
    would get pydantic's "Value error, " prefix).
    """

    def validator(value: V) -> V:
        try:
            return rule(value)
        except InvalidInput as exc:
            raise PydanticCustomError("ketch_rule", "{message}", {"message": exc.message}) from exc

    return validator


def describe_problems(errors: Iterable[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """pydantic validation errors as ketch reports them: one ``field: problem`` message
    (naming how many more there are) and the full list for ``details``.

    The server (for request bodies) and the SDK (before sending one) share it, so both
    say the same thing about the same mistake.
    """
    problems = [
        {
            "field": ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            or "body",
            "problem": str(error.get("msg", "invalid")),
        }
        for error in errors
    ]
    if not problems:
        return "invalid request", problems
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{first['field']}: {first['problem']}{more}", problems


class WireModel(BaseModel):
    """Base of request bodies: unknown fields are an error.

    Pydantic's lax mode still refuses numbers for strings; flags use ``StrictBool`` so
    that ``"yes"`` or ``1`` are not read as true.
    """

    model_config = ConfigDict(extra="forbid")


class ReadModel(BaseModel):
    """Base of response bodies: tolerant, so that older SDKs read newer servers."""

    model_config = ConfigDict(extra="ignore")


class ErrorBody(ReadModel):
    code: str
    message: str
    request_id: str | None = None
    details: dict[str, Any] | None = None


class ErrorEnvelope(ReadModel):
    """The single shape of every failure response."""

    error: ErrorBody


class Page(ReadModel, Generic[T]):
    """One page of a list; pass ``next_token`` back to get the next one."""

    items: list[T]
    next_token: str | None = None
