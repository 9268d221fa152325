"""The one error tree of ketch, shared by the server and the SDK.

Every failure that reaches a caller is a :class:`KetchError` carrying a stable
:class:`ErrorCode`. The API maps codes to HTTP statuses in exactly one table
(``ketch.api.errors``); the SDK raises the same classes from the envelope's code.

    KetchError
    ├── InvalidInput          ValidationError, InvalidHost, UnsupportedMediaType
    ├── PayloadTooLarge
    ├── Unauthenticated
    ├── Forbidden             AccessDenied
    ├── NotFound              NotFound, MethodNotAllowed
    ├── Conflict
    ├── Throttled
    ├── QuotaExceeded
    ├── BackendUnavailable    ServiceUnavailable
    └── InternalError

Messages say what is allowed, not only what is wrong.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """The closed list of error codes that may appear on the wire."""

    VALIDATION_ERROR = "ValidationError"
    INVALID_HOST = "InvalidHost"
    UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    UNAUTHENTICATED = "Unauthenticated"
    ACCESS_DENIED = "AccessDenied"
    NOT_FOUND = "NotFound"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    CONFLICT = "Conflict"
    THROTTLED = "Throttled"
    QUOTA_EXCEEDED = "QuotaExceeded"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    INTERNAL_ERROR = "InternalError"


class KetchError(Exception):
    """Base of every ketch error: a stable code, a human message, optional details."""

    default_code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, message={self.message!r})"


class InvalidInput(KetchError):
    """The request is malformed or breaks a validation rule; nothing was changed."""

    default_code = ErrorCode.VALIDATION_ERROR


class PayloadTooLarge(KetchError):
    """The request body is larger than the server accepts."""

    default_code = ErrorCode.PAYLOAD_TOO_LARGE


class Unauthenticated(KetchError):
    """No credentials, or credentials that are unknown, expired or revoked."""

    default_code = ErrorCode.UNAUTHENTICATED


class Forbidden(KetchError):
    """The caller is known but may not do this."""

    default_code = ErrorCode.ACCESS_DENIED


class NotFound(KetchError):
    """The resource does not exist, or the caller may not know that it does."""

    default_code = ErrorCode.NOT_FOUND


class Conflict(KetchError):
    """The request conflicts with the current state (duplicate name, non-empty OU, ...)."""

    default_code = ErrorCode.CONFLICT


class Throttled(KetchError):
    """Too many requests; retry later."""

    default_code = ErrorCode.THROTTLED


class QuotaExceeded(KetchError):
    """A quota or limit of the account or organisation would be exceeded."""

    default_code = ErrorCode.QUOTA_EXCEEDED


class BackendUnavailable(KetchError):
    """A backend (database, object store, executor) cannot be reached right now."""

    default_code = ErrorCode.SERVICE_UNAVAILABLE


class InternalError(KetchError):
    """An unexpected failure; the message never carries internals."""

    default_code = ErrorCode.INTERNAL_ERROR


ERROR_CLASSES: dict[ErrorCode, type[KetchError]] = {
    ErrorCode.VALIDATION_ERROR: InvalidInput,
    ErrorCode.INVALID_HOST: InvalidInput,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: InvalidInput,
    ErrorCode.PAYLOAD_TOO_LARGE: PayloadTooLarge,
    ErrorCode.UNAUTHENTICATED: Unauthenticated,
    ErrorCode.ACCESS_DENIED: Forbidden,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.METHOD_NOT_ALLOWED: NotFound,
    ErrorCode.CONFLICT: Conflict,
    ErrorCode.THROTTLED: Throttled,
    ErrorCode.QUOTA_EXCEEDED: QuotaExceeded,
    ErrorCode.SERVICE_UNAVAILABLE: BackendUnavailable,
    ErrorCode.INTERNAL_ERROR: InternalError,
}
"""Which class stands for each code; the SDK rebuilds errors from the envelope with it."""


def error_from_code(code: str, message: str, details: dict[str, Any] | None = None) -> KetchError:
    """Build the matching :class:`KetchError` for a wire code (unknown codes become internal)."""
    try:
        known = ErrorCode(code)
    except ValueError:
        return InternalError(message, details=details)
    return ERROR_CLASSES[known](message, code=known, details=details)
