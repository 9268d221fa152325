"""The iam service's composite operations: bootstrap, sign-in, the caller's identity."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ketch.core.errors import Throttled
from ketch.core.ids import new_secret
from ketch.core.krn import validate_name
from ketch.iam.access import create_assignment, ensure_builtin_permission_sets, list_assignments
from ketch.iam.builtin import ORG_ADMIN_SET
from ketch.iam.identity import (
    Caller,
    check_login_allowed,
    create_user,
    get_user,
    issue_token,
    login_failed,
    record_login_failure,
    verify_login,
)
from ketch.org import get_organization
from ketch.schemas.iam import Reach, TokenIssued, Whoami
from ketch.store.session import UnitOfWork, UnitOfWorkFactory

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdminBootstrap:
    """What bootstrapping the first admin produced; the password and token are shown once."""

    username: str
    password: str
    token: TokenIssued


def bootstrap_admin(uow: UnitOfWork, *, username: str, token_ttl: timedelta) -> AdminBootstrap:
    """Create the built-in permission sets and the first admin (OrgAdmin on the root OU)."""
    ensure_builtin_permission_sets(uow)
    password = new_secret(18) + "aA1"  # random, and always of the required character classes
    if username != "admin":
        validate_name(username, kind="user name")
    create_user(
        uow,
        name=username,
        password=password,
        display_name="First administrator",
        allow_reserved_name=True,
    )
    create_assignment(
        uow,
        permission_set=ORG_ADMIN_SET,
        principal_type="user",
        principal=username,
        target_type="ou",
        target="",
        created_by=None,
    )
    token = issue_token(uow, username, name="bootstrap", ttl=token_ttl)
    logger.info("organisation admin %s created", username)
    return AdminBootstrap(username=username, password=password, token=token)


SignInRecorder = Callable[[UnitOfWork, str | None], None]
"""Called in the sign-in's own transaction with ``None`` on success, else the error code."""


def login(
    uows: UnitOfWorkFactory,
    *,
    username: str,
    password: str,
    token_ttl: timedelta,
    record: SignInRecorder | None = None,
) -> TokenIssued:
    """Exchange a username and password for a new API token.

    Unknown user, wrong password and disabled user give the same error; repeated
    failures for one user name are throttled (429). A failure is counted (and passed to
    ``record``) in its own transaction, since the request itself fails.
    """
    try:
        with uows(write=True) as uow:
            check_login_allowed(uow, username)
            name = verify_login(uow, username=username, password=password)
            if name is not None:
                logger.info("user %s signed in", name)
                issued = issue_token(uow, name, name="login", ttl=token_ttl)
                if record is not None:
                    record(uow, None)
                return issued
    except Throttled as exc:
        if record is not None:
            with uows(write=True) as uow:
                record(uow, exc.code.value)
        raise
    failure = login_failed()
    with uows(write=True) as uow:
        record_login_failure(uow, username)
        if record is not None:
            record(uow, failure.code.value)
    logger.info("sign-in failed")
    raise failure


def whoami(uow: UnitOfWork, caller: Caller, *, is_org_admin: bool) -> Whoami:
    """The caller, its groups, and the assignments that reach it."""
    user = get_user(uow, caller.name)
    holders = [("user", caller.name), *(("group", group) for group in user.groups)]
    reach = [
        Reach(
            permission_set=a.permission_set,
            target_type=a.target_type,
            target=a.target,
            via="user" if kind == "user" else f"group {name}",
        )
        for kind, name in holders
        for a in list_assignments(uow, principal_type=kind, principal=name)
    ]
    return Whoami(
        principal=caller.principal,
        organization=get_organization(uow).name,
        groups=user.groups,
        reach=reach,
        is_org_admin=is_org_admin,
        token_id=caller.token_id,
        token_read_only=caller.token_read_only,
        token_account_ids=list(caller.token_accounts)
        if caller.token_accounts is not None
        else None,
    )
