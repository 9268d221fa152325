"""Single sign-on end to end against a real OpenID Connect provider on loopback.

The provider is the npm package ``oidc-provider`` (tests/support/oidc), started once for
the module; ``OidcProvider.browser_login`` plays the browser. Without Node.js these tests
fail in CI (or with ``KETCH_TEST_OIDC=required``) and are skipped elsewhere; run
``scripts/ensure_oidc_provider.sh`` to install what they need.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from pydantic import SecretStr, ValidationError

from ketch.core.errors import BackendUnavailable, Conflict, InvalidInput, Unauthenticated
from ketch.iam import add_group_member, create_group, create_user, get_group, get_user
from ketch.server.context import Context
from ketch.sso import (
    IdentityClaims,
    OidcProviderConfig,
    PendingLogin,
    add_pending_login,
    count_pending_logins,
    finish_login,
    provision,
    start_login,
    take_pending_login,
)
from ketch.sso.oidc import _verify_id_token
from ketch.store.session import UnitOfWorkFactory
from support.audit import ManualClock
from support.oidc_provider import OidcProvider, running_provider

REDIRECT_URI = "http://127.0.0.1:9/api/v1/sso/callback"
MAPPING = {"ml-engineers": "ml-team", "admins": "platform-admins"}
ALICE_GROUPS = ["ml-engineers", "admins"]


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    with running_provider([REDIRECT_URI]) as provider:
        yield provider


@pytest.fixture
def config(idp: OidcProvider) -> OidcProviderConfig:
    return OidcProviderConfig(
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        group_mapping=MAPPING,
    )


@pytest.fixture
def logins(uow: UnitOfWorkFactory) -> UnitOfWorkFactory:
    """Where sign-ins in progress are kept: the database, on each backend in turn."""
    return uow


def _now() -> datetime:
    return datetime.now(UTC)


def _take(logins: UnitOfWorkFactory, state: str) -> PendingLogin:
    with logins(write=True) as u:
        return take_pending_login(u, state)


def _browser_login(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory, account: str
) -> tuple[PendingLogin, dict[str, str]]:
    start = start_login(config, REDIRECT_URI)
    with logins(write=True) as u:
        pending = add_pending_login(u, start, ttl=config.login_ttl)
    return pending, idp.browser_login(start.authorization_url, account)


def _sign_in(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory, account: str
) -> IdentityClaims:
    _, params = _browser_login(idp, config, logins, account)
    pending = _take(logins, params["state"])
    return finish_login(config, pending, params, now=_now())


def test_the_authorization_url_uses_pkce_s256(config: OidcProviderConfig) -> None:
    start = start_login(config, REDIRECT_URI)
    query = parse_qs(urlsplit(start.authorization_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] == [start.state]
    assert query["nonce"] == [start.nonce]
    assert query["redirect_uri"] == [REDIRECT_URI]
    assert "openid" in query["scope"][0].split()
    assert start.code_verifier not in start.authorization_url
    assert query["code_challenge"][0] != start.code_verifier
    assert query["code_challenge"] == [create_s256_code_challenge(start.code_verifier)]
    assert start.redirect_uri == REDIRECT_URI


def test_login_creates_the_user_just_in_time_with_mapped_groups(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory, uow: UnitOfWorkFactory
) -> None:
    claims = _sign_in(idp, config, logins, "alice")
    assert (claims.issuer, claims.subject, claims.username) == (idp.issuer, "alice", "alice")
    assert claims.email == "alice@example.test"
    assert sorted(claims.groups) == sorted(ALICE_GROUPS)

    with uow(write=True) as u:
        assert provision(u, config.issuer, claims, config.mapping) == "alice"
    with uow() as u:
        user = get_user(u, "alice")
    assert user.source == "sso"
    assert user.display_name == "Alice Liddell"
    assert user.groups == ["ml-team", "platform-admins"]
    with logins() as u:
        assert count_pending_logins(u) == 0


def test_a_later_login_resyncs_sso_groups_and_keeps_local_ones(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory, uow: UnitOfWorkFactory
) -> None:
    with uow(write=True) as u:
        provision(u, config.issuer, _sign_in(idp, config, logins, "alice"), config.mapping)
        create_group(u, name="reviewers")
        add_group_member(u, "reviewers", "alice")

    idp.set_account("alice", groups=["ml-engineers"], email="alice@new.example.test")
    try:
        claims = _sign_in(idp, config, logins, "alice")
    finally:
        idp.set_account("alice", groups=ALICE_GROUPS, email="alice@example.test")
    with uow(write=True) as u:
        assert provision(u, config.issuer, claims, config.mapping) == "alice"
    with uow() as u:
        user = get_user(u, "alice")
        admins = get_group(u, "platform-admins")
    assert user.groups == ["ml-team", "reviewers"]
    assert user.email == "alice@new.example.test"
    assert admins.members == []


def test_unmapped_groups_are_dropped_or_kept_under_their_own_name(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory, uow: UnitOfWorkFactory
) -> None:
    claims = _sign_in(idp, config, logins, "bob")
    assert claims.groups == ["data-scientists"]
    with uow(write=True) as u:
        provision(u, config.issuer, claims, config.mapping)
        assert get_user(u, "bob").groups == []
    keep = config.model_copy(update={"unmapped_groups": "same-name"})
    with uow(write=True) as u:
        provision(u, keep.issuer, claims, keep.mapping)
        assert get_user(u, "bob").groups == ["data-scientists"]


def test_a_local_user_with_the_same_name_is_not_taken_over(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory, uow: UnitOfWorkFactory
) -> None:
    with uow(write=True) as u:
        create_user(u, name="carol", password="Cinnamon-Harbour-Lantern-82")
    claims = _sign_in(idp, config, logins, "carol")
    with pytest.raises(Conflict, match="not linked"), uow(write=True) as u:
        provision(u, config.issuer, claims, config.mapping)
    with uow() as u:
        assert get_user(u, "carol").source == "local"


def test_a_callback_with_the_wrong_state_is_rejected(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory
) -> None:
    pending, params = _browser_login(idp, config, logins, "alice")
    with pytest.raises(Unauthenticated, match="sign-in in progress"):
        _take(logins, "not-" + params["state"])
    forged = {**params, "state": "forged"}
    with pytest.raises(Unauthenticated, match="does not match"):
        finish_login(config, pending, forged, now=_now())
    # The genuine callback still works once, and its state is then used up.
    genuine = _take(logins, params["state"])
    assert finish_login(config, genuine, params, now=_now()).subject == "alice"
    with pytest.raises(Unauthenticated, match="already used"):
        _take(logins, params["state"])


def test_a_replayed_code_is_rejected(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory
) -> None:
    pending, params = _browser_login(idp, config, logins, "alice")
    finish_login(config, pending, params, now=_now())
    with pytest.raises(Unauthenticated, match="invalid_grant"):
        finish_login(config, pending, params, now=_now())


@pytest.mark.parametrize(
    ("config_change", "pending_change", "error"),
    [
        pytest.param({}, {"nonce": "another-nonce"}, r"ID token .* invalid", id="nonce"),
        pytest.param({}, {"code_verifier": "x" * 64}, "invalid_grant", id="code-verifier"),
        pytest.param(
            {"client_secret": SecretStr("not-the-secret")}, {}, "invalid_client", id="secret"
        ),
    ],
)
def test_a_login_with_a_wrong_secret_is_rejected(
    idp: OidcProvider,
    config: OidcProviderConfig,
    logins: UnitOfWorkFactory,
    config_change: dict[str, Any],
    pending_change: dict[str, Any],
    error: str,
) -> None:
    pending, params = _browser_login(idp, config, logins, "alice")
    wrong_config = config.model_copy(update=config_change)
    with pytest.raises(Unauthenticated, match=error):
        finish_login(wrong_config, replace(pending, **pending_change), params, now=_now())


def test_an_expired_login_is_rejected(
    idp: OidcProvider, config: OidcProviderConfig, logins: UnitOfWorkFactory, any_context: Context
) -> None:
    pending, params = _browser_login(idp, config, logins, "alice")
    later = pending.expires_at + timedelta(seconds=1)
    with pytest.raises(Unauthenticated, match="took too long"):
        finish_login(config, pending, params, now=later)
    with pytest.raises(Unauthenticated, match="expired"):
        _take(UnitOfWorkFactory(any_context.engine, ManualClock(later)), params["state"])


@pytest.mark.parametrize(
    "issuer",
    [
        "http://idp.example",
        "http://127.0.0.1.idp.example",
        "http://localhost.idp.example",
        "http://localhost@idp.example",
        "https://idp.example/?tenant=a",
        "ftp://idp.example",
    ],
)
def test_the_issuer_must_be_https_except_on_loopback(issuer: str) -> None:
    with pytest.raises(ValidationError, match="https URL"):
        OidcProviderConfig(issuer=issuer, client_id="ketch", client_secret="s")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_a_loopback_issuer_may_use_plain_http(host: str) -> None:
    config = OidcProviderConfig(issuer=f"http://{host}:8080/", client_id="ketch", client_secret="s")
    assert config.issuer == f"http://{host}:8080"


def test_a_bad_group_mapping_is_refused_when_configured() -> None:
    with pytest.raises(InvalidInput, match="ketch group name"):
        OidcProviderConfig(
            issuer="https://idp.example",
            client_id="ketch",
            client_secret="s",
            group_mapping={"ml-engineers": "not a name!"},
        )


def test_an_id_token_algorithm_outside_the_allow_list_is_refused() -> None:
    config = OidcProviderConfig(issuer="https://idp.example", client_id="ketch", client_secret="s")
    metadata = {"id_token_signing_alg_values_supported": ["HS256", "none"]}
    with pytest.raises(BackendUnavailable, match="signs ID tokens with none of"):
        _verify_id_token(config, "a.b.c", {"keys": []}, metadata, nonce="n")
