"""The one mapping from error codes to HTTP statuses, and the envelope renderer.

Every failure, including framework ones (unknown route, bad JSON, wrong method),
leaves the server as ``{"error": {"code", "message", "request_id"}}``. Unhandled
exceptions become a 500 envelope in ``ketch.api.middleware``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ketch.core.errors import ErrorCode, KetchError
from ketch.schemas.common import describe_problems

STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.INVALID_HOST: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.ACCESS_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.THROTTLED: 429,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}

_CODE_OF_STATUS = {status: code for code, status in reversed(STATUS_OF.items())}
"""The code an HTTP error of a status gets: the first listed for it in ``STATUS_OF``."""


def envelope(
    code: ErrorCode,
    message: str,
    request_id: str | None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error response for ``code``."""
    body: dict[str, Any] = {"code": code.value, "message": message, "request_id": request_id}
    if details:
        body["details"] = details
    response_headers = {"Cache-Control": "no-store", **(headers or {})}
    if code is ErrorCode.UNAUTHENTICATED:
        response_headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": body}, status_code=STATUS_OF[code], headers=response_headers)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to the envelope."""

    @app.exception_handler(KetchError)
    async def _ketch_error(request: Request, exc: KetchError) -> JSONResponse:
        return envelope(exc.code, exc.message, _request_id(request), exc.details or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, problems = describe_problems(exc.errors())
        return envelope(
            ErrorCode.VALIDATION_ERROR, message, _request_id(request), {"errors": problems}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODE_OF_STATUS.get(exc.status_code, ErrorCode.INTERNAL_ERROR)
        message = exc.detail if isinstance(exc.detail, str) else code.value
        if exc.status_code == 404:
            message = f"no route for {request.method} {request.url.path}"
        return envelope(code, message, _request_id(request), headers=dict(exc.headers or {}))
