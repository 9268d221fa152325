"""A compact, read-only picture of the whole organisation for other services.

The iam service builds its Cedar entities from it (OU tree, accounts and their stage),
once per policy epoch rather than per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ketch.org.tables import AccountRow, OrganizationRow, OURow
from ketch.org.tree import OUTree
from ketch.store.session import UnitOfWork


@dataclass(frozen=True, slots=True)
class OuFacts:
    id: str
    name: str
    parent_id: str | None
    path: str


@dataclass(frozen=True, slots=True)
class AccountFacts:
    id: str
    ou_id: str
    stage: str
    status: str


@dataclass(frozen=True, slots=True)
class OrgSnapshot:
    organization_id: str
    organization_name: str
    root_ou_id: str
    ous: dict[str, OuFacts]
    accounts: dict[str, AccountFacts]
    ou_ids_by_path: dict[str, str]


def org_snapshot(uow: UnitOfWork) -> OrgSnapshot:
    """Every OU and account, with OU paths resolved."""
    organization = uow.session.scalars(select(OrganizationRow)).one()
    rows = list(uow.session.scalars(select(OURow)))
    tree = OUTree(rows)
    ous = {r.id: OuFacts(r.id, r.name, r.parent_id, tree.path_of(r.id)) for r in rows}
    accounts = {
        a.id: AccountFacts(a.id, a.ou_id, a.stage, a.status)
        for a in uow.session.scalars(select(AccountRow))
    }
    by_path = {ou.path: ou.id for ou in ous.values()}
    return OrgSnapshot(organization.id, organization.name, tree.root().id, ous, accounts, by_path)
