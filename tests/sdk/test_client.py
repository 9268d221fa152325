"""``ketch.Client``: finding the server and token, typed errors, retries, a light import.

Transport-level behaviour (statuses the in-process app never returns, refused
connections) runs over ``httpx.MockTransport``; everything else over the real app.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import ketch
from ketch.api.errors import STATUS_OF
from ketch.core.errors import ErrorCode
from ketch.sdk.credentials import DEFAULT_URL
from support.settings import TEST_HOST

APP_URL = f"http://{TEST_HOST}"
READY = {"status": "ready"}
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and remembers every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _mock_client(handler: Handler, **kwargs: Any) -> ketch.Client:
    kwargs.setdefault("retry_delays", (0, 0, 0))
    return ketch.Client(
        url="http://ketch.test", token="t0k", transport=httpx.MockTransport(handler), **kwargs
    )


def _envelope(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return httpx.Response(status, json=body)


def _store(home: Path, **data: Any) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "credentials.json").write_text(json.dumps(data))


# -- finding the server and the token ------------------------------------------------


def test_environment_gives_url_and_token(monkeypatch: pytest.MonkeyPatch, ketch_home: Path) -> None:
    _store(ketch_home, url="http://stored.test", token="stored-token")
    monkeypatch.setenv("KETCH_URL", "http://env.test:9000/")
    monkeypatch.setenv("KETCH_TOKEN", "env-token")
    recorder = Recorder(httpx.Response(200, json=READY))

    client = ketch.Client(transport=httpx.MockTransport(recorder))

    assert client.health() == READY
    assert (client.url, client.token) == ("http://env.test:9000", "env-token")
    sent = recorder.requests[0]
    assert str(sent.url) == "http://env.test:9000/readyz"
    assert sent.headers["authorization"] == "Bearer env-token"


def test_stored_credentials_are_the_fallback(
    ketch_home: Path, http: TestClient, admin_token: str
) -> None:
    _store(ketch_home, url=APP_URL, token=admin_token)

    client = ketch.Client(http_client=http)

    assert (client.url, client.token) == (APP_URL, admin_token)
    assert client.whoami().principal.name == "admin"


def test_environment_token_goes_to_the_stored_url(
    monkeypatch: pytest.MonkeyPatch, ketch_home: Path
) -> None:
    _store(ketch_home, url="http://stored.test", token="stored-token")
    monkeypatch.setenv("KETCH_TOKEN", "env-token")
    client = ketch.Client()
    assert (client.url, client.token) == ("http://stored.test", "env-token")


def test_stored_token_is_never_sent_to_another_server(
    monkeypatch: pytest.MonkeyPatch, ketch_home: Path
) -> None:
    _store(ketch_home, url="http://stored.test", token="stored-token")
    monkeypatch.setenv("KETCH_URL", "http://elsewhere.test")
    assert ketch.Client().token is None


def test_stored_token_is_used_when_the_url_differs_only_by_a_trailing_slash(
    monkeypatch: pytest.MonkeyPatch, ketch_home: Path
) -> None:
    _store(ketch_home, url="http://stored.test", token="stored-token")
    monkeypatch.setenv("KETCH_URL", "http://stored.test/")
    assert ketch.Client().token == "stored-token"
    assert ketch.Client(url="http://stored.test/").token == "stored-token"


def test_arguments_beat_environment_and_file(
    monkeypatch: pytest.MonkeyPatch, ketch_home: Path
) -> None:
    _store(ketch_home, url="http://stored.test", token="stored-token")
    monkeypatch.setenv("KETCH_URL", "http://env.test")
    monkeypatch.setenv("KETCH_TOKEN", "env-token")
    client = ketch.Client(url="http://arg.test", token="arg-token")
    assert (client.url, client.token) == ("http://arg.test", "arg-token")


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"token": "no-url"}'])
def test_an_unreadable_credentials_file_counts_as_none(ketch_home: Path, content: str) -> None:
    ketch_home.mkdir(parents=True)
    (ketch_home / "credentials.json").write_text(content)
    client = ketch.Client()
    assert (client.url, client.token) == (DEFAULT_URL, None)


def test_with_neither_calls_fail_with_a_clear_error(http: TestClient, ketch_home: Path) -> None:
    assert not ketch_home.exists()
    refused = Recorder(httpx.ConnectError("connection refused"))

    client = ketch.Client(transport=httpx.MockTransport(refused), retry_delays=())

    assert (client.url, client.token) == (DEFAULT_URL, None)
    with pytest.raises(ketch.BackendUnavailable) as unreachable:
        client.whoami()
    assert DEFAULT_URL in unreachable.value.message
    assert "KETCH_URL" in unreachable.value.message
    assert "authorization" not in refused.requests[0].headers

    with pytest.raises(ketch.Unauthenticated) as anonymous:
        ketch.Client(http_client=http).whoami()
    assert "ketch login" in anonymous.value.message
    assert anonymous.value.status_code == 401  # type: ignore[attr-defined]


# -- identity ----------------------------------------------------------------------


def test_login_switches_the_client_to_the_new_token(
    http: TestClient, admin_credentials: dict[str, str]
) -> None:
    client = ketch.Client(url=APP_URL, http_client=http)
    assert client.token is None
    assert client.health()["status"]  # public, needs no token

    issued = client.login(admin_credentials["username"], admin_credentials["password"])

    assert client.token == issued.token
    me = client.whoami()
    assert (me.principal.name, me.is_org_admin, me.token_id) == ("admin", True, issued.token_id)
    assert client.organization().name == me.organization


def test_login_with_a_wrong_password_is_unauthenticated(
    http: TestClient, admin_credentials: dict[str, str]
) -> None:
    client = ketch.Client(url=APP_URL, http_client=http)
    with pytest.raises(ketch.Unauthenticated):
        client.login(admin_credentials["username"], "wrong")
    assert client.token is None


def test_login_with_an_empty_user_name_is_invalid_input_without_a_request() -> None:
    recorder = Recorder(httpx.Response(200, json={}))
    with pytest.raises(ketch.InvalidInput) as caught:
        _mock_client(recorder).login("", "secret")
    assert caught.value.message.startswith("username:")
    assert recorder.requests == []


def test_repr_never_shows_the_token() -> None:
    client = ketch.Client(url="http://ketch.test", token="ketch_secret_value")
    assert "ketch_secret_value" not in repr(client)
    assert "token=set" in repr(client)


def test_close_leaves_an_injected_http_client_open(http: TestClient, admin_token: str) -> None:
    with ketch.Client(url=APP_URL, token=admin_token, http_client=http) as client:
        client.whoami()
    assert not http.is_closed
    owned = _mock_client(Recorder(httpx.Response(200, json=READY)))
    with owned:
        owned.health()
    with pytest.raises(RuntimeError, match="closed"):
        owned.health()


# -- errors ------------------------------------------------------------------------

EXPECTED_CLASS = {
    ErrorCode.VALIDATION_ERROR: ketch.InvalidInput,
    ErrorCode.INVALID_HOST: ketch.InvalidInput,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: ketch.InvalidInput,
    ErrorCode.PAYLOAD_TOO_LARGE: ketch.PayloadTooLarge,
    ErrorCode.UNAUTHENTICATED: ketch.Unauthenticated,
    ErrorCode.ACCESS_DENIED: ketch.Forbidden,
    ErrorCode.NOT_FOUND: ketch.NotFound,
    ErrorCode.METHOD_NOT_ALLOWED: ketch.NotFound,
    ErrorCode.CONFLICT: ketch.Conflict,
    ErrorCode.THROTTLED: ketch.Throttled,
    ErrorCode.QUOTA_EXCEEDED: ketch.QuotaExceeded,
    ErrorCode.SERVICE_UNAVAILABLE: ketch.BackendUnavailable,
    ErrorCode.INTERNAL_ERROR: ketch.InternalError,
}


def test_the_expected_classes_cover_every_code() -> None:
    assert set(EXPECTED_CLASS) == set(ErrorCode)


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.value)
def test_every_error_code_raises_its_typed_exception(code: ErrorCode) -> None:
    status = STATUS_OF[code]
    recorder = Recorder(
        _envelope(status, code.value, "what went wrong", request_id="req-1", details={"k": "v"})
    )

    with pytest.raises(ketch.KetchError) as caught:
        _mock_client(recorder, retry_delays=()).health()

    exc = caught.value
    assert type(exc) is EXPECTED_CLASS[code]
    assert exc.code is code
    assert exc.message == "what went wrong"
    assert exc.details == {"k": "v"}
    assert exc.status_code == status  # type: ignore[attr-defined]
    assert exc.request_id == "req-1"  # type: ignore[attr-defined]


def test_errors_from_the_real_app_carry_status_and_request_id(
    client: ketch.Client, http: TestClient
) -> None:
    with pytest.raises(ketch.NotFound) as missing:
        client.accounts.get("no-such-account")
    assert "no-such-account" in missing.value.message
    assert missing.value.status_code == 404  # type: ignore[attr-defined]
    assert missing.value.request_id.startswith("req-")  # type: ignore[attr-defined]

    client.accounts.create("dup-acct", stage="dev")
    with pytest.raises(ketch.Conflict) as duplicate:
        client.accounts.create("dup-acct", stage="dev")
    assert "already exists" in duplicate.value.message
    assert duplicate.value.status_code == 409  # type: ignore[attr-defined]

    with pytest.raises(ketch.InvalidInput) as bad_token:
        client.accounts.list(next_token="garbage")
    assert "next_token" in bad_token.value.message
    assert bad_token.value.status_code == 400  # type: ignore[attr-defined]

    with pytest.raises(ketch.Unauthenticated) as unknown_token:
        ketch.Client(url=APP_URL, token="ketch_nope_nope", http_client=http).whoami()
    assert unknown_token.value.status_code == 401  # type: ignore[attr-defined]

    with pytest.raises(ketch.NotFound) as wrong_method:
        client.request("DELETE", "/api/v1/organization")
    assert wrong_method.value.code is ErrorCode.METHOD_NOT_ALLOWED
    assert wrong_method.value.status_code == 405  # type: ignore[attr-defined]


def test_request_id_falls_back_to_the_header() -> None:
    response = httpx.Response(
        409,
        json={"error": {"code": "Conflict", "message": "taken"}},
        headers={"x-request-id": "req-header"},
    )
    with pytest.raises(ketch.Conflict) as caught:
        _mock_client(Recorder(response)).health()
    assert caught.value.request_id == "req-header"  # type: ignore[attr-defined]


def test_unknown_code_becomes_an_internal_error_with_the_message() -> None:
    recorder = Recorder(_envelope(418, "Teapot", "short and stout"))
    with pytest.raises(ketch.InternalError) as caught:
        _mock_client(recorder).health()
    assert caught.value.message == "short and stout"
    assert caught.value.status_code == 418  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, ketch.InternalError), (502, ketch.BackendUnavailable), (504, ketch.BackendUnavailable)],
)
def test_a_body_that_is_not_an_envelope_still_raises_a_typed_error(
    status: int, expected: type[ketch.KetchError]
) -> None:
    recorder = Recorder(httpx.Response(status, text="<html>Bad Gateway</html>"))
    with pytest.raises(expected) as caught:
        _mock_client(recorder, retry_delays=()).health()
    assert f"HTTP {status}" in caught.value.message
    assert "Bad Gateway" in caught.value.message
    assert caught.value.status_code == status  # type: ignore[attr-defined]


# -- retries -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_reads_are_retried_on_gateway_errors(status: int) -> None:
    recorder = Recorder(
        _envelope(status, "ServiceUnavailable", "busy"),
        _envelope(status, "ServiceUnavailable", "busy"),
        httpx.Response(200, json=READY),
    )
    assert _mock_client(recorder).health() == READY
    assert len(recorder.requests) == 3


def test_reads_give_up_after_the_last_delay() -> None:
    recorder = Recorder(_envelope(503, "ServiceUnavailable", "still busy"))
    with pytest.raises(ketch.BackendUnavailable) as caught:
        _mock_client(recorder, retry_delays=(0, 0)).health()
    assert len(recorder.requests) == 3
    assert caught.value.message == "still busy"
    assert caught.value.status_code == 503  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [400, 404, 409, 500])
def test_other_failures_are_not_retried(status: int) -> None:
    recorder = Recorder(_envelope(status, "InternalError", "no"), httpx.Response(200, json=READY))
    with pytest.raises(ketch.KetchError):
        _mock_client(recorder).health()
    assert len(recorder.requests) == 1


def test_no_retry_delays_means_no_retries() -> None:
    recorder = Recorder(_envelope(503, "ServiceUnavailable", "busy"))
    with pytest.raises(ketch.BackendUnavailable):
        _mock_client(recorder, retry_delays=()).health()
    assert len(recorder.requests) == 1


def test_writes_are_not_retried_unless_they_carry_a_client_token() -> None:
    created = {
        "id": "ou1",
        "name": "teams",
        "path": "teams",
        "parent_id": "root",
        "krn": "krn:ketch::ou/teams",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    plain = Recorder(
        _envelope(503, "ServiceUnavailable", "busy"), httpx.Response(201, json=created)
    )
    with pytest.raises(ketch.BackendUnavailable):
        _mock_client(plain).ous.create("teams")
    assert len(plain.requests) == 1

    tokened = Recorder(
        _envelope(502, "ServiceUnavailable", "busy"), httpx.Response(201, json=created)
    )
    assert _mock_client(tokened).ous.create("teams", client_token="tok-1").id == "ou1"
    assert len(tokened.requests) == 2
    assert json.loads(tokened.requests[1].content)["client_token"] == "tok-1"


def test_connection_errors_are_retried_for_reads() -> None:
    recorder = Recorder(httpx.ConnectError("refused"), httpx.Response(200, json=READY))
    assert _mock_client(recorder).health() == READY
    assert len(recorder.requests) == 2


def test_an_unreachable_server_is_backend_unavailable_naming_the_url() -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(ketch.BackendUnavailable) as caught:
        _mock_client(recorder).health()
    assert len(recorder.requests) == 4
    assert "http://ketch.test" in caught.value.message
    assert "ConnectError" in caught.value.message
    assert isinstance(caught.value.__cause__, httpx.ConnectError)

    write = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(ketch.BackendUnavailable):
        _mock_client(write).ous.create("teams")
    assert len(write.requests) == 1


# -- the package -------------------------------------------------------------------


def test_every_public_name_resolves_and_unknown_names_do_not() -> None:
    assert {"Client", "KetchError", "NotFound"} <= set(ketch.__all__)
    for name in ketch.__all__:
        assert getattr(ketch, name) is not None
    assert issubclass(ketch.NotFound, ketch.KetchError)
    with pytest.raises(AttributeError, match="no_such_thing"):
        ketch.no_such_thing  # noqa: B018


def test_using_the_client_loads_no_server_code() -> None:
    """Beyond ``import ketch`` (tests/test_architecture.py): resolving the lazy names
    and building a client must not pull in server code either."""
    heavy = ["sqlalchemy", "fastapi", "starlette", "alembic", "uvicorn"]
    code = (
        "import sys, ketch\n"
        "client = ketch.Client(url='http://ketch.test', token='t')\n"
        "names = [getattr(ketch, name) for name in ketch.__all__]\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
