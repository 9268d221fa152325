"""First start: the organisation, its root OU and the first admin, created once.

The admin's password and token are returned to the caller to show once, and kept in
``$KETCH_HOME/initial-admin.json`` with mode 0600 so they are not lost if the
terminal scrolls away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ketch import audit, iam, org
from ketch.core.errors import Conflict
from ketch.core.files import write_private_json
from ketch.core.krn import krn
from ketch.server.context import Context

logger = logging.getLogger(__name__)

ADMIN_FILE = "initial-admin.json"


@dataclass(frozen=True)
class BootstrapResult:
    organization: str
    username: str
    password: str
    token: str
    credentials_file: Path


def bootstrap(
    context: Context, *, org_name: str = "main", admin_username: str = "admin"
) -> BootstrapResult | None:
    """Create the organisation and first admin if missing; ``None`` when already done."""
    ttl = timedelta(days=context.settings.auth.token_ttl_days)
    with context.uow(write=True) as uow:
        if org.is_bootstrapped(uow):
            return None
        organization = org.bootstrap_organization(uow, name=org_name)
        admin = iam.bootstrap_admin(uow, username=admin_username, token_ttl=ttl)
        audit.record_event(uow, _bootstrap_entry(organization.name, admin.username))
        path = context.settings.home / ADMIN_FILE
        write_private_json(
            path,
            {
                "organization": organization.name,
                "username": admin.username,
                "password": admin.password,
                "token": admin.token.token,
            },
        )
    logger.info("bootstrapped organisation %s; admin credentials in %s", org_name, path)
    return BootstrapResult(
        organization=organization.name,
        username=admin.username,
        password=admin.password,
        token=admin.token.token,
        credentials_file=path,
    )


def _bootstrap_entry(organization: str, admin: str) -> audit.AuditEntry:
    """The trail's first record: who the first admin is (no secret)."""
    return audit.AuditEntry(
        principal="system",
        principal_id=None,
        account=None,
        action="BootstrapOrganization",
        resource=krn("", "organization", organization),
        request_id=None,
        source_ip=None,
        user_agent=None,
        outcome=audit.Outcome.SUCCESS,
        details={"admin": admin},
    )


def ensure_bootstrapped(context: Context, **names: str) -> BootstrapResult | None:
    """Like :func:`bootstrap`, tolerating another process winning the race."""
    try:
        return bootstrap(context, **names)
    except Conflict:
        return None
