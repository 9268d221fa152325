"""A one-shot HTTP listener on ``127.0.0.1`` for the end of ``ketch login --sso``.

The listener takes a random free port and a random path; the server redirects the
browser there with a one-time ``code`` (or ``error`` and ``error_description``) once the
identity provider has signed the user in. Only that path is answered, only once, and the
page shown never repeats the code. The standard library's request log is silenced,
because the request line carries the code.
"""

from __future__ import annotations

import html
import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

LOOPBACK = "127.0.0.1"
_PAGE = (
    "<!doctype html><meta charset=utf-8><title>ketch</title>"
    "<p>{message}</p><p>You can close this window and return to the terminal.</p>"
)


class LoopbackListener:
    """Use as a context manager: ``redirect_url`` to hand out, then :meth:`wait`."""

    def __init__(self) -> None:
        self._path = f"/ketch-sso/{secrets.token_urlsafe(16)}"
        self._params: dict[str, str] | None = None
        self._arrived = threading.Event()
        self._lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = HTTPServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ketch-sso-listener", daemon=True
        )

    @property
    def redirect_url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_port}{self._path}"

    def __enter__(self) -> LoopbackListener:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, timeout: float) -> dict[str, str] | None:
        """The query the browser brought (``code``, or ``error``), or ``None`` on timeout."""
        return self._params if self._arrived.wait(timeout) else None

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        params = dict(parse_qsl(url.query))
        with self._lock:
            expected = url.path == self._path and not self._arrived.is_set()
            if expected and ("code" in params or "error" in params):
                self._params = params
            else:
                expected = False
        if not expected:
            self._reply(request, 404, "Nothing to see here.")
            return
        if "error" in params:
            reason = params.get("error_description") or params["error"]
            self._reply(request, 200, f"Sign-in failed: {reason}")
        else:
            self._reply(request, 200, "You are signed in to ketch.")
        self._arrived.set()

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, message: str) -> None:
        body = _PAGE.format(message=html.escape(message)).encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("Referrer-Policy", "no-referrer")
        request.end_headers()
        request.wfile.write(body)
