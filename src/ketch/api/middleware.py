"""Pure ASGI middleware: request ids, allowed hosts, body size limit, security headers.

Written as raw ASGI (not ``BaseHTTPMiddleware``) so that bodies stream through
untouched and the per-request cost stays small.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ketch.api.errors import STATUS_OF
from ketch.core.errors import ErrorCode
from ketch.core.ids import accept_request_id
from ketch.core.logging import request_id_var

logger = logging.getLogger(__name__)

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "interest-cohort=()"),
)

_INTERNAL_MESSAGE = "internal error; quote the request id when reporting it"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_error(send: Send, code: ErrorCode, message: str, request_id: str) -> None:
    body = json.dumps(
        {"error": {"code": code.value, "message": message, "request_id": request_id}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": STATUS_OF[code],
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"cache-control", b"no-store"),
                *((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _host_only(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class KetchHttpMiddleware:
    """Everything a request goes through before routing, in one pass.

    1. assigns the request id (kept from ``X-Request-Id`` when harmless);
    2. refuses a ``Host`` that is not allowed (DNS-rebinding defence);
    3. refuses bodies over ``max_body_bytes`` (over ``upload_limit(method, path)`` for the
       upload routes it names), by ``Content-Length`` up front and by counting streamed
       chunks otherwise;
    4. adds the request id and security headers to every response;
    5. turns any unhandled exception into a 500 envelope without internals.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Iterable[str],
        max_body_bytes: int,
        upload_limit: Callable[[str, str], int | None] = lambda method, path: None,
    ) -> None:
        self.app = app
        hosts = {h.lower() for h in allowed_hosts}
        self.any_host = "*" in hosts
        self.allowed_hosts = hosts
        self.max_body_bytes = max_body_bytes
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(_header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        try:
            await self._handle(scope, receive, send, request_id)
        finally:
            request_id_var.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        host = _host_only((_header(scope, b"host") or "").lower())
        if not self.any_host and host not in self.allowed_hosts:
            await _send_error(
                send,
                ErrorCode.INVALID_HOST,
                f"host '{host[:100]}' is not allowed; add it to server.allowed_hosts",
                request_id,
            )
            return
        limit = self.upload_limit(scope["method"], scope["path"]) or self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_error(send, ErrorCode.PAYLOAD_TOO_LARGE, _too_large(limit), request_id)
            return

        received = 0
        started = False
        overflow = False

        async def limited_receive() -> Message:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True
                    raise _BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if overflow:
                # The app may have caught the overflow as a parse error and answered 400;
                # the caller must see 413 instead, whatever the app made of it.
                if not started:
                    started = True
                    await _send_error(
                        send, ErrorCode.PAYLOAD_TOO_LARGE, _too_large(limit), request_id
                    )
                return
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                for key, value in SECURITY_HEADERS:
                    headers.setdefault(key, value)
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await _send_error(send, ErrorCode.PAYLOAD_TOO_LARGE, _too_large(limit), request_id)
        except Exception:
            # Handled here rather than by Starlette's outermost error middleware, so the
            # 500 still carries the request id, the envelope and the security headers.
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _send_error(send, ErrorCode.INTERNAL_ERROR, _INTERNAL_MESSAGE, request_id)


def _too_large(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"


class _BodyTooLarge(Exception):
    """Raised inside the app's receive when the streamed body passes the limit."""
