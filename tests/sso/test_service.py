"""Sign-ins in progress and CLI exchange codes in the database, on SQLite and PostgreSQL;
the CLI redirect check; the provider configuration built from the settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from ketch.core.errors import InvalidInput, NotFound, Unauthenticated
from ketch.core.settings import SsoSettings
from ketch.server.context import Context
from ketch.sso import (
    EXCHANGE_CODE_TTL,
    LoginStart,
    PendingLogin,
    add_pending_login,
    check_cli_redirect,
    count_pending_logins,
    create_exchange_code,
    provider_config,
    redeem_exchange_code,
    take_pending_login,
)
from ketch.sso.tables import ExchangeCodeRow, PendingLoginRow
from ketch.store.engine import create_engine_for_url
from ketch.store.session import UnitOfWorkFactory
from support.audit import START, ManualClock

TTL = timedelta(minutes=10)
CLI = "http://127.0.0.1:5123/ketch-sso/abc"


def _start(n: int) -> LoginStart:
    return LoginStart(
        authorization_url=f"https://idp.example/authorize?state=state-{n}",
        state=f"state-{n}",
        code_verifier=f"verifier-{n}-" + "v" * 50,
        nonce=f"nonce-{n}",
        redirect_uri="https://ketch.example/api/v1/auth/sso/callback",
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def uows(any_context: Context, clock: ManualClock) -> UnitOfWorkFactory:
    """Units of work on a migrated database (each backend), on a clock the test moves."""
    return UnitOfWorkFactory(any_context.engine, clock)


def _add(uows: UnitOfWorkFactory, n: int, **options: object) -> None:
    with uows(write=True) as uow:
        add_pending_login(uow, _start(n), ttl=TTL, **options)  # type: ignore[arg-type]


def _take(uows: UnitOfWorkFactory, state: str) -> PendingLogin:
    with uows(write=True) as uow:
        return take_pending_login(uow, state)


def _count(uows: UnitOfWorkFactory) -> int:
    with uows() as uow:
        return count_pending_logins(uow)


def test_a_pending_login_round_trips_once(uows: UnitOfWorkFactory, clock: ManualClock) -> None:
    _add(uows, 1, cli_redirect=CLI)
    pending = _take(uows, "state-1")
    start = _start(1)
    assert (pending.state, pending.code_verifier, pending.nonce) == start[1:4]
    assert pending.redirect_uri == start.redirect_uri
    assert pending.cli_redirect == CLI
    assert pending.expires_at == START + TTL
    with pytest.raises(Unauthenticated, match="already used"):
        _take(uows, "state-1")


def test_another_process_finishes_a_login_this_one_started(
    uows: UnitOfWorkFactory, any_context: Context, clock: ManualClock
) -> None:
    """Kept in the database: a second engine (another server process, or this one after
    a restart) takes the login the first one added."""
    _add(uows, 2)
    other = create_engine_for_url(any_context.settings.resolved_database_url())
    try:
        assert _take(UnitOfWorkFactory(other, clock), "state-2").nonce == "nonce-2"
    finally:
        other.dispose()
    assert _count(uows) == 0


def test_state_is_stored_only_as_a_digest(uows: UnitOfWorkFactory) -> None:
    _add(uows, 3)
    with uows() as uow:
        row = uow.session.scalars(select(PendingLoginRow)).one()
        dumped = uow.session.execute(text("SELECT * FROM sso_pending_logins")).one()
    assert row.state_hash != "state-3" and len(row.state_hash) == 64
    assert "state-3" not in [str(v) for v in dumped]


def test_an_expired_login_cannot_be_taken_and_is_purged(
    uows: UnitOfWorkFactory, clock: ManualClock
) -> None:
    _add(uows, 4)
    clock.advance(seconds=TTL.total_seconds())
    with pytest.raises(Unauthenticated, match="expired"):
        _take(uows, "state-4")
    assert _count(uows) == 1  # refused, not yet purged
    _add(uows, 5)
    assert _count(uows) == 1  # the next add purged the expired one
    assert _take(uows, "state-5").state == "state-5"


def test_pending_logins_are_bounded_dropping_the_oldest(
    uows: UnitOfWorkFactory, clock: ManualClock
) -> None:
    for n in range(4):
        _add(uows, n, max_entries=4)
        clock.advance(seconds=1)
    _add(uows, 4, max_entries=4)
    assert _count(uows) == 3
    for gone in ("state-0", "state-1"):
        with pytest.raises(Unauthenticated):
            _take(uows, gone)
    assert [_take(uows, f"state-{n}").state for n in (2, 3, 4)] == [
        "state-2",
        "state-3",
        "state-4",
    ]


def test_an_exchange_code_works_once_and_is_stored_hashed(uows: UnitOfWorkFactory) -> None:
    with uows(write=True) as uow:
        code = create_exchange_code(uow, "alice")
    with uows() as uow:
        stored = uow.session.scalars(select(ExchangeCodeRow)).one()
    assert code not in (stored.code_hash, stored.user_name) and len(code) >= 40
    with uows(write=True) as uow:
        assert redeem_exchange_code(uow, code) == "alice"
    with pytest.raises(Unauthenticated, match="already used"), uows(write=True) as uow:
        redeem_exchange_code(uow, code)


def test_an_exchange_code_expires(uows: UnitOfWorkFactory, clock: ManualClock) -> None:
    with uows(write=True) as uow:
        code = create_exchange_code(uow, "alice")
    clock.advance(seconds=EXCHANGE_CODE_TTL.total_seconds())
    with pytest.raises(Unauthenticated, match="expired"), uows(write=True) as uow:
        redeem_exchange_code(uow, code)
    with pytest.raises(Unauthenticated, match="unknown"), uows(write=True) as uow:
        redeem_exchange_code(uow, "made-up")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5123/ketch-sso/abc",
        "http://localhost:8080/",
        "http://127.0.0.1:1/cb?keep=1",
    ],
)
def test_loopback_cli_redirects_are_accepted(url: str) -> None:
    assert check_cli_redirect(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:5123/cb",  # the CLI listens on plain http
        "http://127.0.0.1/cb",  # no port
        "http://127.0.0.1:0/cb",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1:08080/cb",
        "http://attacker.example:5123/cb",
        "http://127.0.0.1.attacker.example:5123/cb",
        "http://localhost.attacker.example:5123/cb",
        "http://127.0.0.1:5123@attacker.example/cb",
        "http://user@127.0.0.1:5123/cb",
        "http://[::1]:5123/cb",
        "http://127.0.0.2:5123/cb",
        "http://LOCALHOST:5123/cb",
        "http://127.0.0.1:5123/cb#fragment",
        "http://127.0.0.1:5123\\@attacker.example/cb",
        "http://127.0.0.1:5123/c b",
        "http://127.0.0.1:5123/cb\n",
        "http://127.0.0.1:5123/caf\u00e9",
        "//127.0.0.1:5123/cb",
        "javascript:alert(1)",
        "http://127.0.0.1:5123/" + "a" * 600,
        "",
    ],
)
def test_anything_but_a_loopback_listener_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="cli_redirect must be"):
        check_cli_redirect(url)


def test_sso_is_off_without_an_issuer() -> None:
    with pytest.raises(NotFound, match="single sign-on is not configured"):
        provider_config(SsoSettings())


def test_the_settings_become_the_provider_config() -> None:
    sso = SsoSettings(
        issuer="http://127.0.0.1:9000/",
        client_id="ketch",
        client_secret="s3cret",  # type: ignore[arg-type]
        group_mapping={"ml-engineers": "ml-team"},
        unmapped_groups="same-name",
        login_ttl_seconds=120,
    )
    config = provider_config(sso)
    assert config.issuer == "http://127.0.0.1:9000"
    assert config.client_secret.get_secret_value() == "s3cret"
    assert config.mapping.apply(["ml-engineers", "data"]) == ["data", "ml-team"]
    assert config.login_ttl == timedelta(seconds=120)
