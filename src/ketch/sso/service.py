"""Single sign-on: pending logins and just-in-time provisioning of SSO users.

A user who signs in through the identity provider is found by the pair (issuer,
subject), never by name, so a provider user cannot take over a local account that
happens to share its name: that case is a :class:`Conflict`. A first sign-in creates the
user (``source="sso"``, no password); every sign-in refreshes display name and e-mail
and makes the user's SSO-sourced group memberships exactly the mapped groups of the
provider's group claim. Memberships added in ketch itself (``source="local"``) stay.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from ketch.core.errors import Conflict, InvalidInput, Unauthenticated
from ketch.core.krn import validate_name
from ketch.iam import create_user, find_external_user, get_user, sync_sso_groups, update_user
from ketch.sso.oidc import GroupMapping, IdentityClaims, LoginStart, PendingLogin
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)

MAX_PENDING_LOGINS = 10_000


class PendingLogins:
    """Logins started and not yet finished, by ``state``; in memory, single use.

    Held by one server process: a callback must reach the process that started the
    login, and a restart forgets logins in progress (the user starts again).
    """

    def __init__(self, *, max_entries: int = MAX_PENDING_LOGINS) -> None:
        self._entries: dict[str, PendingLogin] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, start: LoginStart, *, expires_at: datetime) -> PendingLogin:
        """Keep ``start`` until ``expires_at``; when full, the older half is dropped."""
        pending = PendingLogin(
            state=start.state,
            code_verifier=start.code_verifier,
            nonce=start.nonce,
            redirect_uri=start.redirect_uri,
            expires_at=expires_at,
        )
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._drop_oldest_half()
            self._entries[pending.state] = pending
        return pending

    def take(self, state: str, *, now: datetime) -> PendingLogin:
        """Remove and return the login for ``state``; :class:`Unauthenticated` if none."""
        with self._lock:
            self._drop_expired(now)
            pending = self._entries.pop(state, None)
        if pending is None:
            raise Unauthenticated(
                "the sign-in callback does not match a sign-in in progress "
                "(it expired, was already used, or was started elsewhere); sign in again"
            )
        return pending

    def _drop_expired(self, now: datetime) -> None:
        for state in [s for s, p in self._entries.items() if p.expires_at <= now]:
            del self._entries[state]

    def _drop_oldest_half(self) -> None:
        ordered = sorted(self._entries.values(), key=lambda p: p.expires_at)
        for pending in ordered[: max(1, len(ordered) // 2)]:
            del self._entries[pending.state]


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
