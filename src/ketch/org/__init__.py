"""The org service: organisation, OUs and accounts. Other services use only these names."""

from ketch.org.service import (
    bootstrap_organization,
    close_account,
    create_account,
    create_ou,
    delete_ou,
    get_account,
    get_organization,
    get_ou,
    get_ou_by_path,
    is_bootstrapped,
    list_accounts,
    list_ous,
    require_active_account,
    revision,
    update_account,
    update_ou,
)
from ketch.org.snapshot import AccountFacts, OrgSnapshot, OuFacts, org_snapshot

__all__ = [
    "AccountFacts",
    "OrgSnapshot",
    "OuFacts",
    "bootstrap_organization",
    "close_account",
    "create_account",
    "create_ou",
    "delete_ou",
    "get_account",
    "get_organization",
    "get_ou",
    "get_ou_by_path",
    "is_bootstrapped",
    "list_accounts",
    "list_ous",
    "org_snapshot",
    "require_active_account",
    "revision",
    "update_account",
    "update_ou",
]
