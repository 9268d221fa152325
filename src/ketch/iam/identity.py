"""Identity: users, groups and memberships, API tokens, and password sign-in.

Sign-in gives the same error for an unknown user, a wrong password and a disabled
user, and throttles by user name (known or not, so throttling reveals nothing): after
``THROTTLE_AFTER`` failures each further attempt is refused with 429 for a doubling
delay, capped at ``THROTTLE_MAX``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ketch.core.errors import InvalidInput, NotFound, Throttled, Unauthenticated
from ketch.core.ids import hash_secret, new_id
from ketch.core.krn import krn, validate_name
from ketch.iam.epoch import bump_policy_epoch
from ketch.iam.passwords import check_password_strength, hash_password, verify_password
from ketch.iam.rows import row_named
from ketch.iam.tables import (
    ApiTokenRow,
    AssignmentRow,
    GroupMemberRow,
    GroupRow,
    LoginThrottleRow,
    UserRow,
)
from ketch.iam.tokens import generate_token, parse_token, secret_matches
from ketch.schemas.iam import Group, Principal, Token, TokenIssued, User
from ketch.store.paging import fetch_page
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)

THROTTLE_AFTER = 5
THROTTLE_BASE = timedelta(seconds=1)
THROTTLE_MAX = timedelta(minutes=15)
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_TOKEN_LENGTH = 256

_BAD_CREDENTIALS = "invalid username or password"
_BAD_TOKEN = "the API token is unknown, expired or revoked; sign in again with `ketch login`"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal behind a request, with its token's limits."""

    user_id: str
    name: str
    token_id: str | None = None
    token_read_only: bool = False
    token_accounts: tuple[str, ...] | None = None
    # The token's last-used time is older than LAST_USED_RESOLUTION: record a use.
    token_use_stale: bool = False

    @property
    def principal(self) -> Principal:
        return Principal(id=self.user_id, name=self.name, type="user", krn=user_krn(self.name))


def user_krn(name: str) -> str:
    return krn("", "user", name)


# -- users ----------------------------------------------------------------------------


def _user_row(uow: UnitOfWork, name: str) -> UserRow:
    return row_named(uow, UserRow, name, "user")


def _groups_of(uow: UnitOfWork, user_id: str) -> list[str]:
    query = (
        select(GroupRow.name)
        .join(GroupMemberRow, GroupMemberRow.group_id == GroupRow.id)
        .where(GroupMemberRow.user_id == user_id)
        .order_by(GroupRow.name)
    )
    return list(uow.session.scalars(query))


def _user_to_schema(uow: UnitOfWork, row: UserRow) -> User:
    return User(
        id=row.id,
        name=row.name,
        krn=user_krn(row.name),
        display_name=row.display_name,
        email=row.email,
        source=row.source,
        disabled=row.disabled,
        groups=_groups_of(uow, row.id),
        created_at=row.created_at,
    )


def create_user(
    uow: UnitOfWork,
    *,
    name: str,
    password: str | None,
    display_name: str = "",
    email: str | None = None,
    source: str = "local",
    external: tuple[str, str] | None = None,
    allow_reserved_name: bool = False,
) -> User:
    """Create a user; a local user needs a password that meets the strength rule.

    ``allow_reserved_name`` is for bootstrap only: the first admin is called "admin".
    """
    if not allow_reserved_name:
        validate_name(name, kind="user name")
    if password is not None:
        check_password_strength(password, username=name)
    elif source == "local":
        raise InvalidInput("a local user needs a password")
    now = uow.clock.now()
    row = UserRow(
        id=new_id(),
        name=name,
        display_name=display_name,
        email=email,
        password_hash=hash_password(password) if password is not None else None,
        disabled=False,
        source=source,
        external_issuer=external[0] if external else None,
        external_subject=external[1] if external else None,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(row)
    uow.flush_or_conflict(f"user '{name}' already exists")
    bump_policy_epoch(uow)
    logger.info("user %s created", name)
    return _user_to_schema(uow, row)


def get_user(uow: UnitOfWork, name: str) -> User:
    return _user_to_schema(uow, _user_row(uow, name))


def list_users(uow: UnitOfWork, *, limit: int, after: str | None) -> tuple[list[User], str | None]:
    query = select(UserRow).order_by(UserRow.name)
    if after:
        query = query.where(UserRow.name > after)
    rows, next_key = fetch_page(uow.session, query, limit=limit, key_of=lambda r: r.name)
    return [_user_to_schema(uow, r) for r in rows], next_key


def update_user(
    uow: UnitOfWork,
    name: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
) -> User:
    row = _user_row(uow, name)
    if display_name is not None:
        row.display_name = display_name
    if email is not None:
        row.email = email
    if disabled is not None:
        row.disabled = disabled
    if password is not None:
        if row.source != "local":
            raise InvalidInput(f"user '{name}' signs in through SSO and has no password")
        check_password_strength(password, username=name)
        row.password_hash = hash_password(password)
    row.updated_at = uow.clock.now()
    bump_policy_epoch(uow)
    return _user_to_schema(uow, row)


def _delete_assignments_of(uow: UnitOfWork, principal_type: str, principal_id: str) -> None:
    # Assignments name users or groups polymorphically (no foreign key): delete them here.
    uow.session.execute(
        delete(AssignmentRow).where(
            AssignmentRow.principal_type == principal_type,
            AssignmentRow.principal_id == principal_id,
        )
    )


def delete_user(uow: UnitOfWork, name: str) -> None:
    row = _user_row(uow, name)
    _delete_assignments_of(uow, "user", row.id)
    uow.session.delete(row)
    uow.session.flush()
    bump_policy_epoch(uow)


def find_external_user(uow: UnitOfWork, issuer: str, subject: str) -> str | None:
    """The name of the user signed in through ``issuer`` as ``subject``, if any."""
    query = select(UserRow.name).where(
        UserRow.external_issuer == issuer, UserRow.external_subject == subject
    )
    name: str | None = uow.session.scalars(query).first()
    return name


def user_id_of(uow: UnitOfWork, name: str) -> str:
    return _user_row(uow, name).id


# -- groups ---------------------------------------------------------------------------


def _group_row(uow: UnitOfWork, name: str) -> GroupRow:
    return row_named(uow, GroupRow, name, "group")


def _group_to_schema(uow: UnitOfWork, row: GroupRow) -> Group:
    members = select(UserRow.name).join(GroupMemberRow, GroupMemberRow.user_id == UserRow.id)
    names = uow.session.scalars(
        members.where(GroupMemberRow.group_id == row.id).order_by(UserRow.name)
    )
    return Group(
        id=row.id,
        name=row.name,
        krn=krn("", "group", row.name),
        description=row.description,
        members=list(names),
        created_at=row.created_at,
    )


def create_group(uow: UnitOfWork, *, name: str, description: str = "") -> Group:
    validate_name(name, kind="group name")
    now = uow.clock.now()
    row = GroupRow(id=new_id(), name=name, description=description, created_at=now, updated_at=now)
    uow.session.add(row)
    uow.flush_or_conflict(f"group '{name}' already exists")
    bump_policy_epoch(uow)
    return _group_to_schema(uow, row)


def ensure_group(uow: UnitOfWork, name: str) -> str:
    """The id of group ``name``, creating it when missing (for SSO group mapping)."""
    row = uow.session.scalars(select(GroupRow).where(GroupRow.name == name)).first()
    if row is not None:
        return row.id
    return create_group(uow, name=name, description="created from the identity provider").id


def get_group(uow: UnitOfWork, name: str) -> Group:
    return _group_to_schema(uow, _group_row(uow, name))


def list_groups(
    uow: UnitOfWork, *, limit: int, after: str | None
) -> tuple[list[Group], str | None]:
    query = select(GroupRow).order_by(GroupRow.name)
    if after:
        query = query.where(GroupRow.name > after)
    rows, next_key = fetch_page(uow.session, query, limit=limit, key_of=lambda r: r.name)
    return [_group_to_schema(uow, r) for r in rows], next_key


def delete_group(uow: UnitOfWork, name: str) -> None:
    row = _group_row(uow, name)
    _delete_assignments_of(uow, "group", row.id)
    uow.session.delete(row)
    uow.session.flush()
    bump_policy_epoch(uow)


def add_group_member(uow: UnitOfWork, group: str, user: str, *, source: str = "local") -> Group:
    group_row = _group_row(uow, group)
    user_row = _user_row(uow, user)
    if uow.session.get(GroupMemberRow, (group_row.id, user_row.id)) is None:
        uow.session.add(
            GroupMemberRow(
                group_id=group_row.id,
                user_id=user_row.id,
                source=source,
                created_at=uow.clock.now(),
            )
        )
        uow.session.flush()
        bump_policy_epoch(uow)
    return _group_to_schema(uow, group_row)


def remove_group_member(uow: UnitOfWork, group: str, user: str) -> Group:
    group_row = _group_row(uow, group)
    user_row = _user_row(uow, user)
    member = uow.session.get(GroupMemberRow, (group_row.id, user_row.id))
    if member is None:
        raise NotFound(f"user '{user}' is not a member of group '{group}'")
    uow.session.delete(member)
    uow.session.flush()
    bump_policy_epoch(uow)
    return _group_to_schema(uow, group_row)


def sync_sso_groups(uow: UnitOfWork, user: str, groups: list[str]) -> None:
    """Make the user's SSO-sourced memberships exactly ``groups`` (local ones are kept)."""
    user_row = _user_row(uow, user)
    wanted = {ensure_group(uow, g) for g in groups}
    current = {
        m.group_id: m
        for m in uow.session.scalars(
            select(GroupMemberRow).where(GroupMemberRow.user_id == user_row.id)
        )
    }
    for group_id, member in current.items():
        if member.source == "sso" and group_id not in wanted:
            uow.session.delete(member)
    for group_id in wanted - current.keys():
        uow.session.add(
            GroupMemberRow(
                group_id=group_id, user_id=user_row.id, source="sso", created_at=uow.clock.now()
            )
        )
    uow.session.flush()
    bump_policy_epoch(uow)


# -- tokens ---------------------------------------------------------------------------


def _token_to_schema(row: ApiTokenRow, user: str) -> Token:
    return Token(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        user=user,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        read_only=row.read_only,
        account_ids=row.account_ids,
    )


def issue_token(
    uow: UnitOfWork,
    user: str,
    *,
    name: str,
    ttl: timedelta,
    read_only: bool = False,
    account_ids: list[str] | None = None,
) -> TokenIssued:
    """A new API token for ``user``; the secret is returned this once and stored hashed."""
    user_row = _user_row(uow, user)
    if user_row.disabled:
        raise InvalidInput(f"user '{user}' is disabled")
    parts = generate_token()
    now = uow.clock.now()
    row = ApiTokenRow(
        id=new_id(),
        prefix=parts.prefix,
        secret_hash=hash_secret(parts.secret),
        user_id=user_row.id,
        name=name,
        created_at=now,
        expires_at=now + ttl,
        read_only=read_only,
        account_ids=sorted(set(account_ids)) if account_ids is not None else None,
    )
    uow.session.add(row)
    uow.session.flush()
    return TokenIssued(
        token=str(parts),
        token_id=row.id,
        prefix=parts.prefix,
        expires_at=row.expires_at,
        principal=Caller(user_id=user_row.id, name=user_row.name).principal,
        read_only=read_only,
        account_ids=row.account_ids,
    )


def list_tokens(uow: UnitOfWork, user: str) -> list[Token]:
    user_row = _user_row(uow, user)
    rows = uow.session.scalars(
        select(ApiTokenRow)
        .where(ApiTokenRow.user_id == user_row.id)
        .order_by(ApiTokenRow.created_at, ApiTokenRow.id)
    )
    return [_token_to_schema(r, user) for r in rows]


def token_owner(uow: UnitOfWork, token_id: str) -> str:
    """The user name owning token ``token_id`` (authorisation needs the stored owner)."""
    row = uow.session.get(ApiTokenRow, token_id)
    user = uow.session.get(UserRow, row.user_id) if row is not None else None
    if row is None or user is None:
        raise NotFound(f"token '{token_id}' does not exist")
    return user.name


def revoke_token(uow: UnitOfWork, token_id: str) -> Token:
    row = uow.session.get(ApiTokenRow, token_id)
    if row is None:
        raise NotFound(f"token '{token_id}' does not exist")
    if row.revoked_at is None:
        row.revoked_at = uow.clock.now()
    return _token_to_schema(row, token_owner(uow, token_id))


def authenticate(uow: UnitOfWork, presented: str) -> Caller:
    """The caller a bearer token stands for; :class:`Unauthenticated` otherwise.

    Only reads; ``token_use_stale`` tells the caller to :func:`touch_token` (at most
    once a minute per token, so steady traffic does not write on every request).
    """
    parts = parse_token(presented) if len(presented) <= MAX_TOKEN_LENGTH else None
    if parts is None:
        raise Unauthenticated(_BAD_TOKEN)
    row = uow.session.scalars(select(ApiTokenRow).where(ApiTokenRow.prefix == parts.prefix)).first()
    if row is None or not secret_matches(parts.secret, row.secret_hash):
        raise Unauthenticated(_BAD_TOKEN)
    now = uow.clock.now()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthenticated(_BAD_TOKEN)
    user = uow.session.get(UserRow, row.user_id)
    if user is None or user.disabled:
        raise Unauthenticated(_BAD_TOKEN)
    return Caller(
        user_id=user.id,
        name=user.name,
        token_id=row.id,
        token_read_only=row.read_only,
        token_accounts=tuple(row.account_ids) if row.account_ids is not None else None,
        token_use_stale=row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION,
    )


def touch_token(uow: UnitOfWork, token_id: str) -> None:
    """Record that token ``token_id`` was used now."""
    row = uow.session.get(ApiTokenRow, token_id)
    if row is not None:
        row.last_used_at = uow.clock.now()


# -- sign-in --------------------------------------------------------------------------


def _throttle_row(uow: UnitOfWork, username: str) -> LoginThrottleRow | None:
    return uow.session.get(LoginThrottleRow, username[:128])


def check_login_allowed(uow: UnitOfWork, username: str) -> None:
    """:class:`Throttled` while ``username`` is in back-off after repeated failures."""
    row = _throttle_row(uow, username)
    now = uow.clock.now()
    if row is not None and row.blocked_until is not None and row.blocked_until > now:
        wait = int((row.blocked_until - now).total_seconds()) + 1
        raise Throttled(
            f"too many failed sign-ins for this user name; try again in {wait} s",
            details={"retry_after": wait},
        )


def record_login_failure(uow: UnitOfWork, username: str) -> None:
    """Count a failure (in its own transaction: the caller's request fails).

    One atomic upsert: concurrent failures for a new user name neither collide on the key
    nor overwrite each other's count (a read-then-write would, under READ COMMITTED).
    """
    now = uow.clock.now()
    name = username[:128]
    dialect = postgresql if uow.session.get_bind().dialect.name == "postgresql" else sqlite
    table = LoginThrottleRow.__table__
    counted = (
        dialect.insert(table)
        .values(username=name, failures=1, last_failure_at=now)
        .on_conflict_do_update(
            index_elements=[table.c.username],
            set_={"failures": table.c.failures + 1, "last_failure_at": now},
        )
        .returning(table.c.failures)
    )
    failures = uow.session.execute(counted).scalar_one()
    if failures >= THROTTLE_AFTER:
        delay = min(THROTTLE_BASE * 2 ** min(failures - THROTTLE_AFTER, 20), THROTTLE_MAX)
        uow.session.execute(
            update(LoginThrottleRow)
            .where(LoginThrottleRow.username == name)
            .values(blocked_until=now + delay)
        )


def verify_login(uow: UnitOfWork, *, username: str, password: str) -> str | None:
    """The user name if the password is right and the user enabled, else ``None``.

    Clears the throttle on success. Costs the same for unknown users.
    """
    user = uow.session.scalars(select(UserRow).where(UserRow.name == username)).first()
    stored = user.password_hash if user is not None else None
    if not verify_password(stored, password) or user is None or user.disabled:
        return None
    uow.session.execute(delete(LoginThrottleRow).where(LoginThrottleRow.username == username))
    return user.name


def login_failed() -> Unauthenticated:
    return Unauthenticated(_BAD_CREDENTIALS)
