"""The error tree: a closed set of wire codes, each rebuilt into the same class."""

from __future__ import annotations

import pytest

from ketch.core import errors
from ketch.core.errors import (
    ERROR_CLASSES,
    BackendUnavailable,
    Conflict,
    ErrorCode,
    Forbidden,
    InternalError,
    InvalidInput,
    KetchError,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    Throttled,
    Unauthenticated,
    error_from_code,
)

WIRE_CODES = {
    "ValidationError",
    "InvalidHost",
    "UnsupportedMediaType",
    "PayloadTooLarge",
    "Unauthenticated",
    "AccessDenied",
    "NotFound",
    "MethodNotAllowed",
    "Conflict",
    "Throttled",
    "QuotaExceeded",
    "ServiceUnavailable",
    "InternalError",
}
"""The codes clients may see; changing this set is a wire-format change."""

TREE: dict[type[KetchError], set[ErrorCode]] = {
    InvalidInput: {
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.INVALID_HOST,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    },
    PayloadTooLarge: {ErrorCode.PAYLOAD_TOO_LARGE},
    Unauthenticated: {ErrorCode.UNAUTHENTICATED},
    Forbidden: {ErrorCode.ACCESS_DENIED},
    NotFound: {ErrorCode.NOT_FOUND, ErrorCode.METHOD_NOT_ALLOWED},
    Conflict: {ErrorCode.CONFLICT},
    Throttled: {ErrorCode.THROTTLED},
    QuotaExceeded: {ErrorCode.QUOTA_EXCEEDED},
    BackendUnavailable: {ErrorCode.SERVICE_UNAVAILABLE},
    InternalError: {ErrorCode.INTERNAL_ERROR},
}
"""Each class of the tree and the codes it stands for (the module docstring's diagram)."""


def test_error_codes_are_a_closed_set() -> None:
    assert {code.value for code in ErrorCode} == WIRE_CODES
    assert len(list(ErrorCode)) == len(WIRE_CODES)
    with pytest.raises(ValueError):
        ErrorCode("SomethingElse")


def test_codes_are_strings_on_the_wire() -> None:
    assert str(ErrorCode.NOT_FOUND) == "NotFound"
    assert isinstance(ErrorCode.NOT_FOUND, str)
    assert f"{ErrorCode.ACCESS_DENIED}" == "AccessDenied"


def test_every_code_has_exactly_one_class() -> None:
    assert set(ERROR_CLASSES) == set(ErrorCode)
    mapped: dict[type[KetchError], set[ErrorCode]] = {}
    for code, cls in ERROR_CLASSES.items():
        mapped.setdefault(cls, set()).add(code)
    assert mapped == TREE


def test_the_tree_is_flat_under_ketch_error() -> None:
    classes = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, KetchError) and obj is not KetchError
    }
    assert classes == set(TREE)
    for cls in classes:
        assert cls.__bases__ == (KetchError,)
    assert issubclass(KetchError, Exception)


@pytest.mark.parametrize("cls", list(TREE), ids=lambda cls: cls.__name__)
def test_default_code_maps_back_to_the_class(cls: type[KetchError]) -> None:
    assert cls.default_code in TREE[cls]
    assert ERROR_CLASSES[cls.default_code] is cls
    error = cls("boom")
    assert error.code is cls.default_code


def test_base_error_defaults_to_internal() -> None:
    assert KetchError("x").code is ErrorCode.INTERNAL_ERROR


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.value)
def test_error_from_code_round_trip(code: ErrorCode) -> None:
    original = ERROR_CLASSES[code]("something happened", code=code, details={"field": "name"})
    rebuilt = error_from_code(original.code.value, original.message, original.details)
    assert type(rebuilt) is type(original)
    assert rebuilt.code is code
    assert rebuilt.message == "something happened"
    assert str(rebuilt) == "something happened"
    assert rebuilt.details == {"field": "name"}


def test_unknown_code_becomes_internal_error_keeping_the_message() -> None:
    rebuilt = error_from_code("BrandNewCode", "from a newer server", {"a": 1})
    assert type(rebuilt) is InternalError
    assert rebuilt.code is ErrorCode.INTERNAL_ERROR
    assert rebuilt.message == "from a newer server"
    assert rebuilt.details == {"a": 1}


def test_explicit_code_overrides_the_default() -> None:
    error = InvalidInput("bad host", code=ErrorCode.INVALID_HOST)
    assert error.code is ErrorCode.INVALID_HOST
    assert isinstance(error, KetchError)


def test_details_default_to_a_fresh_empty_dict() -> None:
    first, second = NotFound("a"), NotFound("b")
    assert first.details == {}
    first.details["x"] = 1
    assert second.details == {}


def test_repr_shows_class_code_and_message() -> None:
    assert repr(Conflict("name taken")) == "Conflict(code='Conflict', message='name taken')"


def test_errors_are_catchable_as_ketch_error() -> None:
    with pytest.raises(KetchError) as caught:
        raise error_from_code("AccessDenied", "no")
    assert isinstance(caught.value, Forbidden)
