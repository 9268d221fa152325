"""Single sign-on: sign-ins in progress, CLI exchange codes and just-in-time users.

Sign-ins in progress and exchange codes live in the database (``tables.py``), so a
callback may reach any server process and a restart loses nothing. Both are single use
(taking one deletes it, and a concurrent second take finds nothing), expire, and are
looked up by a SHA-256 digest of their key. The number of sign-ins in progress is
bounded: when full, the older half is dropped.

A user who signs in through the identity provider is found by the pair (issuer,
subject), never by name, so a provider user cannot take over a local account that
happens to share its name: that case is a :class:`Conflict`. A first sign-in creates the
user (``source="sso"``, no password); every sign-in refreshes display name and e-mail
and makes the user's SSO-sourced group memberships exactly the mapped groups of the
provider's group claim. Memberships added in ketch itself (``source="local"``) stay.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, delete, func, select

from ketch.core.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from ketch.core.ids import hash_secret, new_secret
from ketch.core.krn import validate_name
from ketch.core.settings import SsoSettings
from ketch.iam import create_user, find_external_user, get_user, sync_sso_groups, update_user
from ketch.sso.oidc import (
    GroupMapping,
    IdentityClaims,
    LoginStart,
    OidcProviderConfig,
    PendingLogin,
)
from ketch.sso.tables import ExchangeCodeRow, PendingLoginRow
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)

MAX_PENDING_LOGINS = 10_000
EXCHANGE_CODE_TTL = timedelta(seconds=60)
CLI_REDIRECT_HOSTS = frozenset({"127.0.0.1", "localhost"})
MAX_CLI_REDIRECT_LENGTH = 512
NOT_CONFIGURED = (
    "single sign-on is not configured on this server; sign in with a password "
    "(`ketch login`), or ask an administrator to set sso.issuer, sso.client_id and "
    "sso.client_secret"
)


def provider_config(settings: SsoSettings) -> OidcProviderConfig:
    """The identity provider of ``settings``; :class:`NotFound` when SSO is off."""
    if settings.issuer is None or settings.client_secret is None:
        raise NotFound(NOT_CONFIGURED)
    return OidcProviderConfig(
        issuer=settings.issuer,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scopes=settings.scopes,
        username_claim=settings.username_claim,
        groups_claim=settings.groups_claim,
        group_mapping=settings.group_mapping,
        unmapped_groups=settings.unmapped_groups,
        login_ttl=timedelta(seconds=settings.login_ttl_seconds),
    )


def check_cli_redirect(url: str) -> str:
    """``url`` if it is a CLI's loopback listener, ``http://127.0.0.1:<port>/...`` or
    ``http://localhost:<port>/...``; :class:`InvalidInput` for anything else.

    Strict on purpose: the exchange code is sent there, so no other host, scheme, user
    info, fragment, odd port spelling or non-ASCII trick may pass.
    """
    problem = InvalidInput(
        "cli_redirect must be http://127.0.0.1:<port>/<path> or "
        "http://localhost:<port>/<path> (the CLI's loopback listener)"
    )
    if len(url) > MAX_CLI_REDIRECT_LENGTH or not url.isascii() or not url.isprintable():
        raise problem
    if any(c.isspace() or c == "\\" for c in url):
        raise problem
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise problem from None
    if (
        parts.scheme != "http"
        or parts.hostname not in CLI_REDIRECT_HOSTS
        or not port
        or parts.netloc != f"{parts.hostname}:{port}"
        or parts.fragment
    ):
        raise problem
    return url


def _delete_one(uow: UnitOfWork, statement: Any) -> bool:
    """Run a DELETE meant to remove one row; whether it did (a concurrent taker may not)."""
    result = cast(CursorResult[Any], uow.session.execute(statement))
    return result.rowcount == 1


def add_pending_login(
    uow: UnitOfWork,
    start: LoginStart,
    *,
    ttl: timedelta,
    cli_redirect: str | None = None,
    max_entries: int = MAX_PENDING_LOGINS,
) -> PendingLogin:
    """Keep ``start`` for ``ttl``; when ``max_entries`` are kept, the older half is dropped."""
    now = uow.clock.now()
    uow.session.execute(delete(PendingLoginRow).where(PendingLoginRow.expires_at <= now))
    count = uow.session.scalar(select(func.count()).select_from(PendingLoginRow)) or 0
    if count >= max_entries:
        dropped = max(1, count // 2)
        cutoff = uow.session.scalars(
            select(PendingLoginRow.expires_at)
            .order_by(PendingLoginRow.expires_at)
            .offset(dropped - 1)
            .limit(1)
        ).one()
        uow.session.execute(delete(PendingLoginRow).where(PendingLoginRow.expires_at <= cutoff))
        logger.warning("%d sign-ins in progress; the oldest %d were dropped", count, dropped)
    pending = PendingLogin(
        state=start.state,
        code_verifier=start.code_verifier,
        nonce=start.nonce,
        redirect_uri=start.redirect_uri,
        expires_at=now + ttl,
        cli_redirect=cli_redirect,
    )
    uow.session.add(
        PendingLoginRow(
            state_hash=hash_secret(pending.state),
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
            redirect_uri=pending.redirect_uri,
            cli_redirect=pending.cli_redirect,
            created_at=now,
            expires_at=pending.expires_at,
        )
    )
    uow.session.flush()
    return pending


def take_pending_login(uow: UnitOfWork, state: str) -> PendingLogin:
    """Remove and return the sign-in started with ``state``; :class:`Unauthenticated` if
    there is none (never started, expired, or already taken)."""
    key = hash_secret(state)
    row = uow.session.get(PendingLoginRow, key)
    taken = row is not None and _delete_one(
        uow, delete(PendingLoginRow).where(PendingLoginRow.state_hash == key)
    )
    if row is None or not taken or row.expires_at <= uow.clock.now():
        raise Unauthenticated(
            "the sign-in callback does not match a sign-in in progress "
            "(it expired or was already used); sign in again"
        )
    return PendingLogin(
        state=state,
        code_verifier=row.code_verifier,
        nonce=row.nonce,
        redirect_uri=row.redirect_uri,
        expires_at=row.expires_at,
        cli_redirect=row.cli_redirect,
    )


def count_pending_logins(uow: UnitOfWork) -> int:
    """How many sign-ins are kept (expired ones included until the next purge)."""
    return uow.session.scalar(select(func.count()).select_from(PendingLoginRow)) or 0


def create_exchange_code(uow: UnitOfWork, user: str, *, ttl: timedelta = EXCHANGE_CODE_TTL) -> str:
    """A one-time code the CLI trades for a token of ``user``; stored only as a digest."""
    now = uow.clock.now()
    uow.session.execute(delete(ExchangeCodeRow).where(ExchangeCodeRow.expires_at <= now))
    code = new_secret(32)
    uow.session.add(
        ExchangeCodeRow(
            code_hash=hash_secret(code), user_name=user, created_at=now, expires_at=now + ttl
        )
    )
    uow.session.flush()
    return code


def redeem_exchange_code(uow: UnitOfWork, code: str) -> str:
    """The user an exchange code was made for, using the code up.

    :class:`Unauthenticated` when the code is unknown, expired or already used.
    """
    key = hash_secret(code)
    row = uow.session.get(ExchangeCodeRow, key)
    taken = row is not None and _delete_one(
        uow, delete(ExchangeCodeRow).where(ExchangeCodeRow.code_hash == key)
    )
    if row is None or not taken or row.expires_at <= uow.clock.now():
        raise Unauthenticated(
            "the sign-in code is unknown, expired or already used; run `ketch login --sso` again"
        )
    return row.user_name


def ketch_user_name(username: str) -> str:
    """A valid ketch user name from the provider's user name claim.

    An e-mail address becomes its local part (``alice@example.com`` → ``alice``).
    """
    candidates = [username]
    if "@" in username:
        candidates.append(username.split("@", 1)[0])
    for candidate in candidates:
        try:
            return validate_name(candidate, kind="user name")
        except InvalidInput:
            continue
    raise InvalidInput(
        f"the identity provider's user name {username!r} is not a valid ketch user name; "
        "choose another username_claim"
    )


def provision(uow: UnitOfWork, issuer: str, claims: IdentityClaims, mapping: GroupMapping) -> str:
    """The ketch user name for a verified SSO identity, creating the user on first sign-in.

    Raises :class:`Unauthenticated` for a disabled user and :class:`Conflict` when the
    name is already held by a local user or a user of another provider.
    """
    if claims.issuer != issuer:
        raise Unauthenticated("the identity comes from another identity provider")
    groups = mapping.apply(claims.groups)
    name = find_external_user(uow, issuer, claims.subject)
    if name is None:
        name = ketch_user_name(claims.username)
        try:
            create_user(
                uow,
                name=name,
                password=None,
                display_name=claims.display_name,
                email=claims.email,
                source="sso",
                external=(issuer, claims.subject),
            )
        except Conflict as exc:
            raise Conflict(
                f"user '{name}' already exists and is not linked to this identity provider; "
                "an administrator must rename or remove it first"
            ) from exc
        logger.info("sso user %s created from %s", name, issuer)
    else:
        user = get_user(uow, name)
        if user.disabled:
            raise Unauthenticated(f"user '{name}' is disabled")
        new_email = claims.email if claims.email and claims.email != user.email else None
        if user.display_name != claims.display_name or new_email is not None:
            update_user(uow, name, display_name=claims.display_name, email=new_email)
    sync_sso_groups(uow, name, groups)
    return name
