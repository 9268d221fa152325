"""The iam service (foundation slice): the first admin, sign-in, API tokens, decisions.

Until permission sets arrive, the decision rule is: organisation admins may do
everything; every other principal may only ask who it is. Default deny.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ketch.core.errors import Conflict, Forbidden, Unauthenticated
from ketch.core.ids import new_id, new_secret
from ketch.core.krn import krn, validate_name
from ketch.iam.actions import ANY_PRINCIPAL_ACTIONS, Action
from ketch.iam.passwords import hash_password, verify_password
from ketch.iam.tables import ApiTokenRow, UserRow
from ketch.iam.tokens import generate_token, hash_secret, parse_token, secret_matches
from ketch.schemas.iam import Principal, TokenIssued
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)

_BAD_CREDENTIALS = "invalid username or password"
_BAD_TOKEN = "the API token is unknown, expired or revoked; sign in again with `ketch login`"  # noqa: S105 (a message)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal behind a request."""

    user_id: str
    name: str
    is_org_admin: bool
    token_id: str | None = None

    @property
    def principal(self) -> Principal:
        return Principal(
            id=self.user_id, name=self.name, type="user", krn=krn("", "user", self.name)
        )


@dataclass(frozen=True, slots=True)
class AdminBootstrap:
    """What bootstrapping the first admin produced; the password and token are shown once."""

    username: str
    password: str
    token: TokenIssued


def bootstrap_admin(uow: UnitOfWork, *, username: str, token_ttl: timedelta) -> AdminBootstrap:
    """Create the first organisation admin with a random password and an API token."""
    if username != "admin":  # "admin" is reserved for users, but is the first admin's name
        validate_name(username, kind="user name")
    if uow.session.scalars(select(UserRow).where(UserRow.name == username)).first():
        raise Conflict(f"user '{username}' already exists")
    password = new_secret(18)
    now = uow.clock.now()
    user = UserRow(
        id=new_id(),
        name=username,
        password_hash=hash_password(password),
        is_org_admin=True,
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(user)
    uow.session.flush()
    token = _issue_token(uow, user, name="bootstrap", ttl=token_ttl)
    logger.info("organisation admin %s created", username)
    return AdminBootstrap(username=username, password=password, token=token)


def _issue_token(uow: UnitOfWork, user: UserRow, *, name: str, ttl: timedelta) -> TokenIssued:
    parts = generate_token()
    now = uow.clock.now()
    row = ApiTokenRow(
        id=new_id(),
        prefix=parts.prefix,
        secret_hash=hash_secret(parts.secret),
        user_id=user.id,
        name=name,
        created_at=now,
        expires_at=now + ttl,
    )
    uow.session.add(row)
    uow.session.flush()
    caller = _caller_of(user, row.id)
    return TokenIssued(
        token=str(parts),
        token_id=row.id,
        prefix=parts.prefix,
        expires_at=row.expires_at,
        principal=caller.principal,
    )


def login(uow: UnitOfWork, *, username: str, password: str, token_ttl: timedelta) -> TokenIssued:
    """Exchange a username and password for a new API token.

    Unknown user, wrong password and disabled user all give the same error.
    """
    user = uow.session.scalars(select(UserRow).where(UserRow.name == username)).first()
    stored = user.password_hash if user is not None else None
    if not verify_password(stored, password) or user is None or user.disabled:
        logger.info("sign-in failed")
        raise Unauthenticated(_BAD_CREDENTIALS)
    logger.info("user %s signed in", user.name)
    return _issue_token(uow, user, name="login", ttl=token_ttl)


def authenticate(uow: UnitOfWork, presented: str) -> Caller:
    """The caller a bearer token stands for; :class:`Unauthenticated` otherwise."""
    parts = parse_token(presented)
    if parts is None:
        raise Unauthenticated(_BAD_TOKEN)
    row = uow.session.scalars(select(ApiTokenRow).where(ApiTokenRow.prefix == parts.prefix)).first()
    if row is None or not secret_matches(parts.secret, row.secret_hash):
        raise Unauthenticated(_BAD_TOKEN)
    if row.revoked_at is not None or _expired(row.expires_at, uow.clock.now()):
        raise Unauthenticated(_BAD_TOKEN)
    user = uow.session.get(UserRow, row.user_id)
    if user is None or user.disabled:
        raise Unauthenticated(_BAD_TOKEN)
    return _caller_of(user, row.id)


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


def _caller_of(user: UserRow, token_id: str | None) -> Caller:
    return Caller(
        user_id=user.id, name=user.name, is_org_admin=user.is_org_admin, token_id=token_id
    )


def authorize(caller: Caller, action: Action) -> None:
    """Allow or raise :class:`Forbidden` (default deny)."""
    if caller.is_org_admin or action in ANY_PRINCIPAL_ACTIONS:
        return
    logger.info("denied %s to %s", action.value, caller.name)
    raise Forbidden(f"{caller.name} is not allowed to perform {action.value}")
