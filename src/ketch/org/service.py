"""The org service: the organisation, its tree of OUs, and accounts.

Every function takes a :class:`~ketch.store.UnitOfWork` first and raises
``KetchError`` subclasses; nothing here knows about HTTP.
"""

from __future__ import annotations

import logging
import unicodedata

from sqlalchemy import func, select, update

from ketch.core.errors import Conflict, InvalidInput, NotFound
from ketch.core.ids import new_id
from ketch.core.krn import krn, split_ou_path, validate_account_id, validate_name
from ketch.org.tables import AccountRow, OrganizationRow, OURow
from ketch.org.tree import OUTree
from ketch.schemas.org import (
    OU,
    Account,
    AccountCreate,
    AccountStatus,
    AccountUpdate,
    Organization,
    Stage,
)
from ketch.store.paging import fetch_page
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)

ROOT_PATH_NAME = "root"
DISPLAY_NAME_MAX = 128  # the width of accounts.display_name


# -- organisation ---------------------------------------------------------------------


def _organization_row(uow: UnitOfWork) -> OrganizationRow | None:
    return uow.session.scalars(select(OrganizationRow)).first()


def _root_ou(uow: UnitOfWork) -> OURow:
    root = uow.session.scalars(select(OURow).where(OURow.parent_id.is_(None))).first()
    if root is None:
        raise NotFound("the organisation is not initialised; run `ketch init`")
    return root


def _record_change(uow: UnitOfWork) -> None:
    """Advance the organisation's revision: OUs or accounts changed in this transaction."""
    uow.session.execute(update(OrganizationRow).values(revision=OrganizationRow.revision + 1))


def revision(uow: UnitOfWork) -> int:
    """A number that grows with every change to OUs and accounts (one single-row read).

    Caches derived from the tree (the iam service's compiled policies) key on it.
    """
    return int(uow.session.scalar(select(OrganizationRow.revision)) or 0)


def is_bootstrapped(uow: UnitOfWork) -> bool:
    """Whether the organisation exists."""
    return _organization_row(uow) is not None


def bootstrap_organization(uow: UnitOfWork, *, name: str) -> Organization:
    """Create the organisation and its root OU; :class:`Conflict` if it already exists."""
    validate_name(name, kind="organisation name")
    if _organization_row(uow) is not None:
        raise Conflict("the organisation already exists")
    now = uow.clock.now()
    org = OrganizationRow(id=new_id(), slot=1, name=name, created_at=now, updated_at=now)
    root = OURow(id=new_id(), name=ROOT_PATH_NAME, parent_id=None, created_at=now, updated_at=now)
    uow.session.add_all([org, root])
    uow.flush_or_conflict("the organisation already exists")
    logger.info("organisation %s bootstrapped", name)
    return _organization_to_schema(org, root)


def get_organization(uow: UnitOfWork) -> Organization:
    """The organisation; :class:`NotFound` before bootstrap."""
    org = _organization_row(uow)
    if org is None:
        raise NotFound("the organisation is not initialised; run `ketch init`")
    return _organization_to_schema(org, _root_ou(uow))


def _organization_to_schema(org: OrganizationRow, root: OURow) -> Organization:
    return Organization(
        id=org.id,
        name=org.name,
        krn=krn("", "organization", org.name),
        root_ou_id=root.id,
        created_at=org.created_at,
    )


# -- OUs ------------------------------------------------------------------------------


def _load_tree(uow: UnitOfWork) -> OUTree:
    return OUTree(uow.session.scalars(select(OURow)).all())


def _ou_to_schema(row: OURow, tree: OUTree) -> OU:
    path = tree.path_of(row.id)
    return OU(
        id=row.id,
        name=row.name,
        path=path,
        parent_id=row.parent_id,
        krn=krn("", "ou", path or ROOT_PATH_NAME),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _resolve_or_create(uow: UnitOfWork, tree: OUTree, path: str, *, create: bool) -> OURow:
    """The OU at ``path``; with ``create``, make missing OUs along the way."""
    names = split_ou_path(path)
    current = tree.root()
    for depth, name in enumerate(names):
        child = tree.child(current.id, name)
        if child is None:
            missing = "/".join(names[: depth + 1])
            if not create:
                raise NotFound(f"OU '{missing}' does not exist", details={"ou": missing})
            now = uow.clock.now()
            child = OURow(
                id=new_id(), name=name, parent_id=current.id, created_at=now, updated_at=now
            )
            uow.session.add(child)
            # Flush one level at a time: without ORM relationships the unit of work does
            # not order inserts of parent and child rows of the same table.
            uow.session.flush()
            tree.add(child)
        current = child
    return current


def create_ou(
    uow: UnitOfWork, *, name: str, parent: str = "", create_missing_parents: bool = False
) -> OU:
    """Create an OU below the OU at path ``parent``."""
    validate_name(name, kind="OU name")
    tree = _load_tree(uow)
    try:
        parent_row = _resolve_or_create(uow, tree, parent, create=create_missing_parents)
    except NotFound as exc:
        raise NotFound(
            f"{exc.message}; create it first or pass create_missing_parents",
            details=exc.details,
        ) from exc
    if tree.child(parent_row.id, name) is not None:
        raise Conflict(f"OU '{tree.join(parent_row.id, name)}' already exists")
    now = uow.clock.now()
    row = OURow(id=new_id(), name=name, parent_id=parent_row.id, created_at=now, updated_at=now)
    uow.session.add(row)
    tree.add(row)
    uow.flush_or_conflict(f"OU '{tree.path_of(row.id)}' already exists")
    _record_change(uow)
    logger.info("OU %s created", tree.path_of(row.id))
    return _ou_to_schema(row, tree)


def get_ou(uow: UnitOfWork, ou_id: str) -> OU:
    """The OU with id ``ou_id``."""
    tree = _load_tree(uow)
    return _ou_to_schema(tree.get(ou_id), tree)


def get_ou_by_path(uow: UnitOfWork, path: str) -> OU:
    """The OU at ``path`` (``""`` is the root)."""
    tree = _load_tree(uow)
    return _ou_to_schema(tree.resolve(split_ou_path(path)), tree)


def list_ous(
    uow: UnitOfWork,
    *,
    parent: str | None = None,
    path: str | None = None,
    limit: int,
    after: str | None = None,
) -> tuple[list[OU], str | None]:
    """OUs ordered by id, optionally only the children of ``parent`` or the one at ``path``."""
    tree = _load_tree(uow)
    query = select(OURow).order_by(OURow.id)
    if parent is not None:
        query = query.where(OURow.parent_id == tree.resolve(split_ou_path(parent)).id)
    if path is not None:
        query = query.where(OURow.id == tree.resolve(split_ou_path(path)).id)
    if after is not None:
        query = query.where(OURow.id > after)
    rows, next_key = fetch_page(uow.session, query, limit=limit, key_of=lambda r: r.id)
    return [_ou_to_schema(r, tree) for r in rows], next_key


def update_ou(
    uow: UnitOfWork, ou_id: str, *, name: str | None = None, parent: str | None = None
) -> OU:
    """Rename and/or move an OU. The root cannot be changed; an OU cannot move below itself."""
    tree = _load_tree(uow)
    row = tree.get(ou_id)
    if row.parent_id is None:
        raise InvalidInput("the root OU cannot be renamed or moved")
    new_name = validate_name(name, kind="OU name") if name is not None else row.name
    new_parent = (
        tree.resolve(split_ou_path(parent)) if parent is not None else tree.get(row.parent_id or "")
    )
    if new_parent.id == row.id or tree.is_descendant(new_parent.id, of=row.id):
        raise InvalidInput(
            f"cannot move OU '{tree.path_of(row.id)}' below itself "
            f"('{tree.path_of(new_parent.id)}')"
        )
    clash = tree.child(new_parent.id, new_name)
    if clash is not None and clash.id != row.id:
        raise Conflict(f"OU '{tree.join(new_parent.id, new_name)}' already exists")
    row.name = new_name
    row.parent_id = new_parent.id
    row.updated_at = uow.clock.now()
    tree.reparent(row)
    uow.flush_or_conflict(f"OU '{tree.path_of(row.id)}' already exists")
    _record_change(uow)
    logger.info("OU %s updated", tree.path_of(row.id))
    return _ou_to_schema(row, tree)


def delete_ou(uow: UnitOfWork, ou_id: str) -> None:
    """Delete an OU that has no child OUs and no accounts (closed accounts count)."""
    tree = _load_tree(uow)
    row = tree.get(ou_id)
    path = tree.path_of(row.id)
    if row.parent_id is None:
        raise InvalidInput("the root OU cannot be deleted")
    if tree.children(row.id):
        raise Conflict(f"OU '{path}' still has child OUs; move or delete them first")
    accounts = uow.session.scalar(
        select(func.count()).select_from(AccountRow).where(AccountRow.ou_id == row.id)
    )
    if accounts:
        raise Conflict(f"OU '{path}' still holds {accounts} account(s); move them first")
    uow.session.delete(row)
    uow.session.flush()
    _record_change(uow)
    logger.info("OU %s deleted", path)


# -- accounts -------------------------------------------------------------------------


def _account_row(uow: UnitOfWork, account_id: str) -> AccountRow:
    row = uow.session.get(AccountRow, account_id)
    if row is None:
        raise NotFound(f"account '{account_id}' does not exist")
    return row


def _account_to_schema(row: AccountRow, tree: OUTree) -> Account:
    return Account(
        id=row.id,
        krn=krn("", "account", row.id),
        display_name=row.display_name,
        stage=Stage(row.stage),
        status=AccountStatus(row.status),
        tags=dict(row.tags),
        ou_id=row.ou_id,
        ou_path=tree.path_of(row.ou_id),
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
    )


def _check_display_name(value: str) -> str:
    # All of Unicode's control characters (C0, DEL and C1): C1 holds terminal escape
    # introducers such as CSI (U+009B) and a line break (NEL, U+0085).
    if (
        any(unicodedata.category(ch) == "Cc" for ch in value)
        or not value.strip()
        or len(value) > DISPLAY_NAME_MAX
    ):
        raise InvalidInput(f"display name must be 1 to {DISPLAY_NAME_MAX} printable characters")
    return value


def create_account(uow: UnitOfWork, data: AccountCreate) -> Account:
    """Create an account in the OU at ``data.ou`` (missing OUs only with ``create_missing_ous``)."""
    account_id = validate_account_id(data.id)
    display_name = _check_display_name(data.display_name or account_id)
    if uow.session.get(AccountRow, account_id) is not None:
        raise Conflict(f"account '{account_id}' already exists")
    tree = _load_tree(uow)
    try:
        ou = _resolve_or_create(uow, tree, data.ou, create=data.create_missing_ous)
    except NotFound as exc:
        raise NotFound(
            f"{exc.message}; create it first or pass create_missing_ous "
            "(`--create-ous` on the command line)",
            details=exc.details,
        ) from exc
    now = uow.clock.now()
    row = AccountRow(
        id=account_id,
        display_name=display_name,
        stage=data.stage.value,
        status=AccountStatus.ACTIVE.value,
        tags=dict(data.tags),
        ou_id=ou.id,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(row)
    uow.flush_or_conflict(f"account '{account_id}' already exists")
    _record_change(uow)
    logger.info("account %s created in OU %s", account_id, tree.path_of(ou.id))
    return _account_to_schema(row, tree)


def get_account(uow: UnitOfWork, account_id: str) -> Account:
    """The account ``account_id``, open or closed."""
    row = _account_row(uow, account_id)
    return _account_to_schema(row, _load_tree(uow))


def require_active_account(uow: UnitOfWork, account_id: str) -> Account:
    """The account, if it may take new work; :class:`Conflict` when it is closed."""
    account = get_account(uow, account_id)
    if account.status is AccountStatus.CLOSED:
        raise Conflict(f"account '{account_id}' is closed and accepts no new work")
    return account


def list_accounts(
    uow: UnitOfWork,
    *,
    ou: str | None = None,
    stage: Stage | None = None,
    status: AccountStatus | None = None,
    limit: int,
    after: str | None = None,
) -> tuple[list[Account], str | None]:
    """Accounts ordered by id, filtered by OU (direct members), stage and status."""
    tree = _load_tree(uow)
    query = select(AccountRow).order_by(AccountRow.id)
    if ou is not None:
        query = query.where(AccountRow.ou_id == tree.resolve(split_ou_path(ou)).id)
    if stage is not None:
        query = query.where(AccountRow.stage == stage.value)
    if status is not None:
        query = query.where(AccountRow.status == status.value)
    if after is not None:
        query = query.where(AccountRow.id > after)
    rows, next_key = fetch_page(uow.session, query, limit=limit, key_of=lambda r: r.id)
    return [_account_to_schema(r, tree) for r in rows], next_key


def update_account(uow: UnitOfWork, account_id: str, data: AccountUpdate) -> Account:
    """Change an open account's display name, stage or tags, or move it to another OU."""
    row = _account_row(uow, account_id)
    if row.status == AccountStatus.CLOSED.value:
        raise Conflict(f"account '{account_id}' is closed and cannot be changed")
    tree = _load_tree(uow)
    if data.ou is not None:
        row.ou_id = tree.resolve(split_ou_path(data.ou)).id
    if data.display_name is not None:
        row.display_name = _check_display_name(data.display_name)
    if data.stage is not None:
        row.stage = data.stage.value
    if data.tags is not None:
        row.tags = dict(data.tags)
    row.updated_at = uow.clock.now()
    uow.session.flush()
    _record_change(uow)
    logger.info("account %s updated", account_id)
    return _account_to_schema(row, tree)


def close_account(uow: UnitOfWork, account_id: str) -> Account:
    """Close an account: it keeps its records and rejects new work. Closing twice is a no-op."""
    row = _account_row(uow, account_id)
    if row.status != AccountStatus.CLOSED.value:
        now = uow.clock.now()
        row.status = AccountStatus.CLOSED.value
        row.closed_at = now
        row.updated_at = now
        uow.session.flush()
        _record_change(uow)
        logger.info("account %s closed", account_id)
    return _account_to_schema(row, _load_tree(uow))
