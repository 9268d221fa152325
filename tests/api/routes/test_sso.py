"""Single sign-on over HTTP: the in-process app against a real OpenID provider on loopback.

The provider (``oidc-provider`` under Node.js, see ``support.oidc_provider``) is real;
only ketch runs in process. ``OidcProvider.browser_login`` plays the browser between
``/auth/sso/start`` and the provider's redirect back to ``/auth/sso/callback``, which the
test then delivers to the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

import ketch
from ketch.core.errors import Unauthenticated
from ketch.core.settings import KetchSettings
from ketch.iam import create_user, find_external_user
from ketch.schemas.audit import AuditEvent
from ketch.server.context import Context
from ketch.sso import count_pending_logins
from support.envelope import assert_envelope
from support.oidc_provider import OidcProvider, running_provider
from support.settings import TEST_HOST, make_settings

START = "/api/v1/auth/sso/start"
CALLBACK = "/api/v1/auth/sso/callback"
EXCHANGE = "/api/v1/auth/sso/exchange"
REDIRECT_URI = f"http://{TEST_HOST}{CALLBACK}"
MAPPING = {"ml-engineers": "ml-team", "admins": "platform-admins"}
LISTENER = "http://127.0.0.1:5123/ketch-sso/listener-path"
SSO_OFF = None


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    with running_provider([REDIRECT_URI]) as provider:
        yield provider


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str, idp: OidcProvider
) -> KetchSettings:
    """Single sign-on against ``idp``; a test parametrises ``settings`` indirectly with
    extra ``sso`` keys, or with ``SSO_OFF``."""
    extra: dict[str, Any] | None = getattr(request, "param", {})
    sso: dict[str, Any] = {}
    if extra is not SSO_OFF:
        sso = {
            "issuer": idp.issuer,
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
            "group_mapping": MAPPING,
            **extra,
        }
    return make_settings(tmp_path / "home", sqlite_url, sso=sso)


@pytest.fixture
def anonymous(http: TestClient, ketch_home: Path) -> ketch.Client:
    """The SDK with no token, as a CLI before it has signed in."""
    return ketch.Client(url=f"http://{TEST_HOST}", token=None, http_client=http)


def _start(http: TestClient, **params: str) -> str:
    response = http.get(START, params=params, follow_redirects=False)
    assert response.status_code == 302, response.text
    assert response.headers["cache-control"] == "no-store"
    return str(response.headers["location"])


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _whoami(http: TestClient, token: str) -> dict[str, Any]:
    response = http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _sign_ins(client: ketch.Client) -> list[AuditEvent]:
    return list(client.audit.iter_all(action="SignIn"))


def _tokens(context: Context) -> int:
    with context.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one())


def _audit_text(context: Context) -> str:
    with context.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events")).all()
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


def test_browser_sign_in_creates_the_user_with_mapped_groups(
    http: TestClient, idp: OidcProvider, client: ketch.Client, context: Context
) -> None:
    authorize = _start(http)
    assert authorize.startswith(idp.issuer + "/")
    query = _query(authorize)
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["code_challenge_method"] == "S256"
    assert query["state"] and query["nonce"] and query["code_challenge"]

    params = idp.browser_login(authorize, "alice")
    response = http.get(CALLBACK, params=params)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    issued = response.json()
    assert issued["principal"]["name"] == "alice"
    assert issued["token"].startswith(f"ketch_{issued['prefix']}_")
    me = _whoami(http, issued["token"])
    assert me["principal"]["name"] == "alice"
    assert me["groups"] == ["ml-team", "platform-admins"]
    assert me["is_org_admin"] is False

    [event] = _sign_ins(client)
    assert (event.principal, event.outcome, event.error_code) == ("alice", "success", None)
    assert event.principal_id == issued["principal"]["id"]
    assert event.details == {"method": "sso", "flow": "browser", "issuer": idp.issuer}
    trail = _audit_text(context)
    assert issued["token"] not in trail and params["code"] not in trail
    assert params["state"] not in trail


def test_the_callback_cannot_be_replayed(http: TestClient, idp: OidcProvider) -> None:
    params = idp.browser_login(_start(http), "alice")
    assert http.get(CALLBACK, params=params).status_code == 200
    error = assert_envelope(http.get(CALLBACK, params=params), 401, "Unauthenticated")
    assert "already used" in error["message"]


def test_cli_sign_in_hands_a_one_time_code_to_the_loopback_listener(
    http: TestClient,
    idp: OidcProvider,
    anonymous: ketch.Client,
    client: ketch.Client,
    context: Context,
) -> None:
    authorize = anonymous.sso_start_url(cli_redirect=LISTENER)
    assert authorize.startswith(idp.issuer + "/")
    params = idp.browser_login(authorize, "bob")

    back = http.get(CALLBACK, params=params, follow_redirects=False)

    assert back.status_code == 302, back.text
    assert back.headers["cache-control"] == "no-store"
    to_listener = back.headers["location"]
    assert to_listener.startswith(LISTENER + "?code=")
    assert "ketch_" not in to_listener and back.text == ""
    code = _query(to_listener)["code"]

    issued = anonymous.sso_exchange(code)
    assert issued.principal.name == "bob"
    assert anonymous.token == issued.token
    assert anonymous.whoami().principal.name == "bob"
    assert anonymous.whoami().groups == []  # data-scientists is not mapped

    with pytest.raises(Unauthenticated, match="already used") as replayed:
        anonymous.sso_exchange(code)
    assert replayed.value.status_code == 401  # type: ignore[attr-defined]

    success, failure = _sign_ins(client)
    assert (success.principal, success.outcome, success.details["flow"]) == (
        "bob",
        "success",
        "cli",
    )
    assert (failure.principal, failure.outcome) == (None, "failed")
    assert failure.error_code == "Unauthenticated"
    trail = _audit_text(context)
    assert code not in trail and issued.token not in trail


def test_an_exchange_code_is_not_a_token(http: TestClient) -> None:
    assert_envelope(http.post(EXCHANGE, json={"code": "made-up"}), 401, "Unauthenticated")
    assert_envelope(http.post(EXCHANGE, json={}), 400, "ValidationError")


def test_an_unknown_state_is_refused_and_audited(
    http: TestClient, idp: OidcProvider, client: ketch.Client, context: Context
) -> None:
    params = idp.browser_login(_start(http), "alice")
    forged = {**params, "state": "not-" + params["state"]}
    error = assert_envelope(http.get(CALLBACK, params=forged), 401, "Unauthenticated")
    assert "does not match a sign-in in progress" in error["message"]
    assert_envelope(http.get(CALLBACK, params={"code": params["code"]}), 401, "Unauthenticated")
    assert [(e.principal, e.outcome) for e in _sign_ins(client)] == [(None, "failed")] * 2
    with context.uow() as uow:
        assert count_pending_logins(uow) == 1  # the genuine sign-in is still waiting


def test_a_provider_error_issues_nothing(
    http: TestClient, idp: OidcProvider, client: ketch.Client, context: Context
) -> None:
    tokens = _tokens(context)
    # prompt=none without a session at the provider: it answers login_required itself.
    params = idp.browser_login(_start(http) + "&prompt=none", "alice")
    assert params["error"] == "login_required" and "code" not in params
    error = assert_envelope(http.get(CALLBACK, params=params), 401, "Unauthenticated")
    assert error["message"].startswith("the identity provider refused the sign-in")

    # The user pressed "deny": the provider sends error=access_denied with the state.
    state = _query(_start(http))["state"]
    denied = {"error": "access_denied", "error_description": "the user said no", "state": state}
    error = assert_envelope(http.get(CALLBACK, params=denied), 401, "Unauthenticated")
    assert "the user said no" in error["message"]
    assert_envelope(http.get(CALLBACK, params={"error": "access_denied"}), 401, "Unauthenticated")

    assert [e.outcome for e in _sign_ins(client)] == ["failed"] * 3
    with context.uow() as uow:
        assert count_pending_logins(uow) == 0  # used up by the failed callbacks
    assert _tokens(context) == tokens
    with context.uow() as uow:
        assert find_external_user(uow, idp.issuer, "alice") is None


def test_a_provider_error_in_the_cli_flow_goes_to_the_listener(
    http: TestClient, idp: OidcProvider, anonymous: ketch.Client
) -> None:
    state = _query(anonymous.sso_start_url(cli_redirect=LISTENER))["state"]
    back = http.get(
        CALLBACK, params={"error": "access_denied", "state": state}, follow_redirects=False
    )
    assert back.status_code == 302
    sent = _query(back.headers["location"])
    assert back.headers["location"].startswith(LISTENER + "?")
    assert sent["error"] == "Unauthenticated" and "access_denied" in sent["error_description"]
    assert "code" not in sent


def test_a_local_user_of_the_same_name_is_not_taken_over(
    http: TestClient, idp: OidcProvider, client: ketch.Client, context: Context
) -> None:
    with context.uow(write=True) as uow:
        create_user(uow, name="carol", password="Cinnamon-Harbour-Lantern-82")
    params = idp.browser_login(_start(http), "carol")
    error = assert_envelope(http.get(CALLBACK, params=params), 409, "Conflict")
    assert "not linked" in error["message"]
    [event] = _sign_ins(client)
    assert (event.principal, event.outcome, event.error_code) == ("carol", "failed", "Conflict")


@pytest.mark.parametrize(
    "cli_redirect",
    [
        "https://attacker.example/cb",
        "http://attacker.example:5123/cb",
        "http://127.0.0.1.attacker.example:5123/cb",
        "http://127.0.0.1:5123@attacker.example/cb",
        "http://127.0.0.1/cb",
        "",
    ],
)
def test_a_cli_redirect_off_loopback_is_refused(
    http: TestClient, context: Context, cli_redirect: str
) -> None:
    response = http.get(START, params={"cli_redirect": cli_redirect}, follow_redirects=False)
    error = assert_envelope(response, 400, "ValidationError")
    assert "cli_redirect must be http://127.0.0.1:<port>" in error["message"]
    with context.uow() as uow:
        assert count_pending_logins(uow) == 0


@pytest.mark.parametrize("settings", [SSO_OFF], indirect=True)
def test_without_configuration_every_route_says_so(
    http: TestClient, anonymous: ketch.Client
) -> None:
    for response in (
        http.get(START, follow_redirects=False),
        http.get(CALLBACK, params={"code": "c", "state": "s"}),
        http.post(EXCHANGE, json={"code": "c"}),
    ):
        error = assert_envelope(response, 404, "NotFound")
        assert error["message"].startswith("single sign-on is not configured")
    with pytest.raises(ketch.NotFound, match="not configured"):
        anonymous.sso_start_url(cli_redirect=LISTENER)


@pytest.mark.parametrize(
    "settings", [{"redirect_base": "https://ketch.example.com/"}], indirect=True
)
def test_the_redirect_base_setting_names_the_callback(http: TestClient) -> None:
    redirect_uri = _query(_start(http))["redirect_uri"]
    assert redirect_uri == "https://ketch.example.com/api/v1/auth/sso/callback"


@pytest.mark.parametrize("settings", [{"issuer": "http://127.0.0.1:1"}], indirect=True)
def test_the_provider_being_down_is_a_clear_503(http: TestClient, context: Context) -> None:
    error = assert_envelope(http.get(START, follow_redirects=False), 503, "ServiceUnavailable")
    assert "OpenID configuration" in error["message"]
    with context.uow() as uow:
        assert count_pending_logins(uow) == 0
