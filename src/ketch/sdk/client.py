"""Client: the synchronous SDK entry point.

``Client()`` with no arguments finds the server and token from ``KETCH_URL`` /
``KETCH_TOKEN`` or the CLI's stored credentials. Failures raise the same
:class:`~ketch.core.errors.KetchError` subclasses the server raised, carrying the
server's message, ``status_code`` and ``request_id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from ketch.core.errors import BackendUnavailable, InternalError, KetchError, error_from_code
from ketch.schemas.iam import LoginRequest, TokenIssued, Whoami
from ketch.schemas.jobs import JobKind
from ketch.schemas.org import Organization
from ketch.schemas.sso import SsoExchangeRequest
from ketch.sdk import credentials
from ketch.sdk._wire import build
from ketch.sdk.resources.access import (
    Assignments,
    Guardrails,
    Iam,
    NetworkPolicyResource,
    PermissionSets,
)
from ketch.sdk.resources.artifacts import Artifacts
from ketch.sdk.resources.audit import Audit
from ketch.sdk.resources.identity import Groups, Tokens, Users
from ketch.sdk.resources.jobs import Jobs
from ketch.sdk.resources.org import Accounts, OrganizationalUnits

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

API_PREFIX = "/api/v1"
RETRY_STATUSES = frozenset({502, 503, 504})
RETRY_DELAYS = (0.2, 0.5, 1.0)

BodyFactory = Callable[[], Iterable[bytes]]
"""Makes a request body afresh for each attempt, so a retry never replays a half-read stream."""


class Client:
    """A connection to one ketch server as one principal.

    ``transport`` or ``http_client`` inject the HTTP layer (tests pass the in-process
    app); otherwise a pooled ``httpx.Client`` is created and closed with :meth:`close`.
    ``retry_delays`` are the pauses, in seconds, before each retry of a retryable
    request; ``()`` turns retries off.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        timeout: float = 30.0,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        found = credentials.resolve(url, token)
        self.url = found.url
        self.token = found.token
        self._retry_delays = tuple(retry_delays)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            base_url=self.url, transport=transport, timeout=timeout
        )
        self.ous = OrganizationalUnits(self)
        self.accounts = Accounts(self)
        self.audit = Audit(self)
        self.users = Users(self)
        self.groups = Groups(self)
        self.tokens = Tokens(self)
        self.permission_sets = PermissionSets(self)
        self.assignments = Assignments(self)
        self.guardrails = Guardrails(self)
        self.network_policy = NetworkPolicyResource(self)
        self.iam = Iam(self)
        self.artifacts = Artifacts(self)
        self.training_jobs = Jobs(self, JobKind.TRAINING)
        self.processing_jobs = Jobs(self, JobKind.PROCESSING)

    # -- plumbing -----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool | None = None,
        accept_redirect: bool = False,
        body: BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send one API request and return the 2xx response, or raise the server's error.

        GETs are retried on connection errors and 502/503/504; other methods only when
        ``retry=True`` (creates that carry a ``client_token`` are safe to repeat).
        ``accept_redirect=True`` returns a redirect instead of treating it as an error.
        ``body`` streams a raw request body (called once per attempt); ``headers`` are
        sent besides the credentials; ``timeout`` replaces the client's for this request.
        """
        return self._send(
            method,
            path,
            json=json,
            params=params,
            retry=retry,
            accept_redirect=accept_redirect,
            body=body,
            headers=headers,
            timeout=timeout,
            stream=False,
        )

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        retry: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """:meth:`request` with the response body left unread, for downloads.

        Read it inside the ``with`` block (``response.iter_bytes()``); the response is
        closed on leaving it. Retries and errors are those of :meth:`request`: only a
        response that has not started to arrive is retried.
        """
        response = self._send(
            method, path, params=params, retry=retry, headers=headers, stream=True
        )
        try:
            yield response
        finally:
            response.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool | None = None,
        accept_redirect: bool = False,
        body: BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        stream: bool,
    ) -> httpx.Response:
        sent_headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        sent_headers.update(headers or {})
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        may_retry = method == "GET" if retry is None else retry
        delays = self._retry_delays if may_retry else ()
        for attempt in range(len(delays) + 1):
            content = body() if body is not None else None
            try:
                request = self._http.build_request(
                    method,
                    path,
                    json=json,
                    params=clean_params,
                    headers=sent_headers,
                    content=content,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
                # The API answers; only SSO redirects, on purpose.
                response = self._http.send(request, stream=stream, follow_redirects=False)
            except httpx.TransportError as exc:
                if attempt < len(delays):
                    time.sleep(delays[attempt])
                    continue
                raise BackendUnavailable(
                    f"cannot reach the ketch server at {self.url} ({type(exc).__name__}); "
                    "is `ketch server` running, and is KETCH_URL right?"
                ) from exc
            finally:
                _close(content)
            if response.status_code in RETRY_STATUSES and attempt < len(delays):
                response.close()
                time.sleep(delays[attempt])
                continue
            if response.is_success or (accept_redirect and response.is_redirect):
                return response
            if stream:
                try:
                    response.read()  # an error's body is a small envelope
                finally:
                    response.close()
            raise _error_of(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, path: str, model: type[ModelT], **params: Any) -> ModelT:
        return model.model_validate(self.request("GET", path, params=params).json())

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, token={'set' if self.token else 'none'})"

    # -- identity ------------------------------------------------------------------

    def login(self, username: str, password: str) -> TokenIssued:
        """Exchange a password for a new API token; this client then uses it."""
        body = build(LoginRequest, username=username, password=password).model_dump()
        response = self.request("POST", f"{API_PREFIX}/auth/login", json=body)
        issued = TokenIssued.model_validate(response.json())
        self.token = issued.token
        return issued

    def sso_start_url(self, *, cli_redirect: str) -> str:
        """The identity provider's sign-in URL for a single sign-on that ends at the
        loopback listener ``cli_redirect`` (``http://127.0.0.1:<port>/...``)."""
        response = self.request(
            "GET",
            f"{API_PREFIX}/auth/sso/start",
            params={"cli_redirect": cli_redirect},
            accept_redirect=True,
        )
        return str(response.headers["location"])

    def sso_exchange(self, code: str) -> TokenIssued:
        """Trade the one-time code of a single sign-on for a new API token; this client
        then uses it. The code works once, for about a minute."""
        body = build(SsoExchangeRequest, code=code).model_dump()
        response = self.request("POST", f"{API_PREFIX}/auth/sso/exchange", json=body)
        issued = TokenIssued.model_validate(response.json())
        self.token = issued.token
        return issued

    def whoami(self) -> Whoami:
        return self._get(f"{API_PREFIX}/whoami", Whoami)

    def organization(self) -> Organization:
        return self._get(f"{API_PREFIX}/organization", Organization)

    def health(self) -> dict[str, Any]:
        """The server's readiness report (no credentials needed)."""
        data: dict[str, Any] = self.request("GET", "/readyz").json()
        return data


def _close(content: Iterable[bytes] | None) -> None:
    """Release what a body factory opened (a generator's ``with open(...)``) at once."""
    close = getattr(content, "close", None)
    if callable(close):
        close()


def _error_of(response: httpx.Response) -> KetchError:
    """Rebuild the server's error from its envelope."""
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
        error = body["error"]
        exc = error_from_code(str(error["code"]), str(error["message"]), error.get("details"))
        request_id = error.get("request_id") or request_id
    except (ValueError, KeyError, TypeError):
        text = response.text[:200]
        cls = BackendUnavailable if response.status_code >= 502 else InternalError
        exc = cls(f"HTTP {response.status_code} from {response.request.url}: {text}")
    exc.status_code = response.status_code  # type: ignore[attr-defined]
    exc.request_id = request_id  # type: ignore[attr-defined]
    return exc
