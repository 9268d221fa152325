"""Access: permission sets, assignments, guardrails and the network policy.

Every change here advances the policy epoch (``ketch.iam.epoch``) in its own
transaction, so every server process sees it on its very next request.
"""

from __future__ import annotations

import ipaddress
import logging

from sqlalchemy import select

from ketch import org
from ketch.core.errors import Conflict, InvalidInput, NotFound
from ketch.core.ids import new_id
from ketch.core.krn import krn, validate_name
from ketch.iam.builtin import BUILTIN_SETS
from ketch.iam.engine import AccessFacts, AssignmentFacts, GuardrailFacts, PermissionSetFacts
from ketch.iam.epoch import bump_policy_epoch, policy_epoch, settings_row
from ketch.iam.policy_text import guardrail_templates, permission_set_templates
from ketch.iam.rows import row_named
from ketch.iam.tables import (
    AssignmentRow,
    GroupMemberRow,
    GroupRow,
    GuardrailRow,
    IamSettingsRow,
    PermissionSetRow,
    UserRow,
)
from ketch.org import org_snapshot
from ketch.schemas.iam import Assignment, Guardrail, NetworkPolicy, PermissionSet
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)

MAX_CIDRS = 256


# -- network policy -------------------------------------------------------------------


def _check_cidrs(cidrs: list[str] | None) -> list[str] | None:
    if cidrs is None:
        return None
    if len(cidrs) > MAX_CIDRS:
        raise InvalidInput(f"at most {MAX_CIDRS} address ranges are allowed")
    checked = []
    for cidr in cidrs:
        try:
            checked.append(str(ipaddress.ip_network(cidr, strict=False)))
        except ValueError as exc:
            raise InvalidInput(
                f"'{cidr[:64]}' is not an address range; use CIDR notation such as 10.8.0.0/16"
            ) from exc
    return checked


def get_network_policy(uow: UnitOfWork) -> NetworkPolicy:
    return NetworkPolicy(allowed_cidrs=settings_row(uow).allowed_cidrs)


def set_network_policy(
    uow: UnitOfWork, allowed_cidrs: list[str] | None, *, caller_address: str | None = None
) -> NetworkPolicy:
    """``None`` allows every source address; a list allows only those ranges.

    With ``caller_address``, a list that would shut out the caller making the change is
    refused: an administrator must not lock the organisation out by a typo.
    """
    checked = _check_cidrs(allowed_cidrs)
    if checked is not None and caller_address is not None:
        try:
            address = ipaddress.ip_address(caller_address)
        except ValueError:
            address = None
        if address is None or not any(address in ipaddress.ip_network(c) for c in checked):
            raise InvalidInput(
                f"this allow-list would lock you out: your address {caller_address[:64]} "
                "is in none of its ranges; include it"
            )
    row = settings_row(uow)
    row.allowed_cidrs = checked
    bump_policy_epoch(uow)
    return NetworkPolicy(allowed_cidrs=row.allowed_cidrs)


# -- permission sets ------------------------------------------------------------------


def _set_to_schema(row: PermissionSetRow) -> PermissionSet:
    return PermissionSet(
        id=row.id,
        name=row.name,
        krn=krn("", "permission-set", row.name),
        description=row.description,
        policy_text=row.policy_text,
        builtin=row.builtin,
        allowed_cidrs=row.allowed_cidrs,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _set_row(uow: UnitOfWork, name: str) -> PermissionSetRow:
    return row_named(uow, PermissionSetRow, name, "permission set")


def create_permission_set(
    uow: UnitOfWork,
    *,
    name: str,
    policy_text: str,
    description: str = "",
    allowed_cidrs: list[str] | None = None,
    builtin: bool = False,
) -> PermissionSet:
    validate_name(name, kind="permission set name")
    permission_set_templates(policy_text)
    now = uow.clock.now()
    row = PermissionSetRow(
        id=new_id(),
        name=name,
        description=description,
        policy_text=policy_text,
        builtin=builtin,
        allowed_cidrs=_check_cidrs(allowed_cidrs),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(row)
    uow.flush_or_conflict(f"permission set '{name}' already exists")
    bump_policy_epoch(uow)
    return _set_to_schema(row)


def get_permission_set(uow: UnitOfWork, name: str) -> PermissionSet:
    return _set_to_schema(_set_row(uow, name))


def list_permission_sets(uow: UnitOfWork) -> list[PermissionSet]:
    rows = uow.session.scalars(select(PermissionSetRow).order_by(PermissionSetRow.name))
    return [_set_to_schema(r) for r in rows]


def update_permission_set(
    uow: UnitOfWork,
    name: str,
    *,
    policy_text: str | None = None,
    description: str | None = None,
    allowed_cidrs: list[str] | None = None,
    clear_allowed_cidrs: bool = False,
) -> PermissionSet:
    row = _set_row(uow, name)
    if row.builtin:
        raise InvalidInput(f"'{name}' is a built-in permission set; create a custom one instead")
    if policy_text is not None:
        permission_set_templates(policy_text)
        row.policy_text = policy_text
    if description is not None:
        row.description = description
    if allowed_cidrs is not None or clear_allowed_cidrs:
        row.allowed_cidrs = _check_cidrs(allowed_cidrs)
    row.updated_at = uow.clock.now()
    bump_policy_epoch(uow)
    return _set_to_schema(row)


def delete_permission_set(uow: UnitOfWork, name: str) -> None:
    row = _set_row(uow, name)
    if row.builtin:
        raise InvalidInput(f"'{name}' is a built-in permission set and cannot be deleted")
    used = uow.session.scalars(
        select(AssignmentRow.id).where(AssignmentRow.permission_set_id == row.id)
    ).first()
    if used is not None:
        raise Conflict(f"permission set '{name}' is still assigned; delete its assignments first")
    uow.session.delete(row)
    bump_policy_epoch(uow)


def ensure_builtin_permission_sets(uow: UnitOfWork) -> None:
    """Create the built-in sets that are missing (bootstrap and upgrades)."""
    existing = set(uow.session.scalars(select(PermissionSetRow.name)))
    for builtin in BUILTIN_SETS:
        if builtin.name not in existing:
            create_permission_set(
                uow,
                name=builtin.name,
                policy_text=builtin.policy_text,
                description=builtin.description,
                builtin=True,
            )


# -- assignments ----------------------------------------------------------------------


def _principal_id(uow: UnitOfWork, principal_type: str, name: str) -> str:
    table = UserRow if principal_type == "user" else GroupRow
    found = uow.session.scalar(select(table.id).where(table.name == name))
    if found is None:
        raise NotFound(f"{principal_type} '{name}' does not exist")
    return str(found)


def _assignments_to_schema(uow: UnitOfWork, rows: list[AssignmentRow]) -> list[Assignment]:
    """Wire views of ``rows``, with names looked up in bulk (not once per row)."""
    set_names = dict(uow.session.execute(select(PermissionSetRow.id, PermissionSetRow.name)).all())
    principal_names = {
        "user": dict(uow.session.execute(select(UserRow.id, UserRow.name)).all()),
        "group": dict(uow.session.execute(select(GroupRow.id, GroupRow.name)).all()),
    }
    ou_paths = {ou.id: ou.path for ou in org_snapshot(uow).ous.values()} if rows else {}
    return [
        Assignment(
            id=row.id,
            permission_set=set_names[row.permission_set_id],
            principal_type=row.principal_type,
            principal=principal_names[row.principal_type][row.principal_id],
            target_type=row.target_type,
            target=(
                row.target_id
                if row.target_type == "account"
                else ou_paths.get(row.target_id, f"(missing OU {row.target_id})")
            ),
            created_at=row.created_at,
            created_by=row.created_by,
        )
        for row in rows
    ]


def _target_id(uow: UnitOfWork, target_type: str, target: str) -> str:
    """The stored id of an assignment target: the account id, or the id of the OU at a path."""
    if target_type == "account":
        return org.get_account(uow, target).id
    return org.get_ou_by_path(uow, target).id


def create_assignment(
    uow: UnitOfWork,
    *,
    permission_set: str,
    principal_type: str,
    principal: str,
    target_type: str,
    target: str,
    created_by: str | None,
) -> Assignment:
    set_row = _set_row(uow, permission_set)
    row = AssignmentRow(
        id=new_id(),
        permission_set_id=set_row.id,
        principal_type=principal_type,
        principal_id=_principal_id(uow, principal_type, principal),
        target_type=target_type,
        target_id=_target_id(uow, target_type, target),
        created_at=uow.clock.now(),
        created_by=created_by,
    )
    uow.session.add(row)
    uow.flush_or_conflict("this assignment already exists")
    bump_policy_epoch(uow)
    logger.info(
        "assigned %s to %s %s on %s %s",
        permission_set,
        principal_type,
        principal,
        target_type,
        target,
    )
    return _assignments_to_schema(uow, [row])[0]


def list_assignments(
    uow: UnitOfWork, *, principal_type: str | None = None, principal: str | None = None
) -> list[Assignment]:
    query = select(AssignmentRow).order_by(AssignmentRow.created_at, AssignmentRow.id)
    if principal_type and principal:
        query = query.where(
            AssignmentRow.principal_type == principal_type,
            AssignmentRow.principal_id == _principal_id(uow, principal_type, principal),
        )
    return _assignments_to_schema(uow, list(uow.session.scalars(query)))


def get_assignment(uow: UnitOfWork, assignment_id: str) -> Assignment:
    row = uow.session.get(AssignmentRow, assignment_id)
    if row is None:
        raise NotFound(f"assignment '{assignment_id}' does not exist")
    return _assignments_to_schema(uow, [row])[0]


def delete_assignment(uow: UnitOfWork, assignment_id: str) -> None:
    row = uow.session.get(AssignmentRow, assignment_id)
    if row is None:
        raise NotFound(f"assignment '{assignment_id}' does not exist")
    uow.session.delete(row)
    bump_policy_epoch(uow)


# -- guardrails -----------------------------------------------------------------------


def check_ou_unreferenced(uow: UnitOfWork, ou_id: str) -> None:
    """:class:`Conflict` if an assignment targets the OU or a guardrail is attached to it:
    deleting it would leave grants and guardrails pointing at nothing."""
    ou = org_snapshot(uow).ous.get(ou_id)
    if ou is None or ou.parent_id is None:
        return  # missing, or the root: the org service gives the reason it stays
    path = ou.path
    assignments = uow.session.scalars(
        select(AssignmentRow.id)
        .where(AssignmentRow.target_type == "ou", AssignmentRow.target_id == ou_id)
        .limit(1)
    ).first()
    if assignments is not None:
        raise Conflict(
            f"OU '{path}' is the target of permission set assignments; delete them first"
        )
    guardrail = uow.session.scalars(
        select(GuardrailRow.name).where(GuardrailRow.ou_id == ou_id).limit(1)
    ).first()
    if guardrail is not None:
        raise Conflict(
            f"guardrail '{guardrail}' is attached to OU '{path}'; move or delete it first"
        )


def _guardrail_to_schema(row: GuardrailRow, ou_path: str) -> Guardrail:
    return Guardrail(
        id=row.id,
        name=row.name,
        krn=krn("", "guardrail", row.name),
        description=row.description,
        policy_text=row.policy_text,
        ou=ou_path,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _guardrail_row(uow: UnitOfWork, name: str) -> GuardrailRow:
    return row_named(uow, GuardrailRow, name, "guardrail")


def create_guardrail(
    uow: UnitOfWork, *, name: str, policy_text: str, ou: str, description: str = ""
) -> Guardrail:
    validate_name(name, kind="guardrail name")
    guardrail_templates(policy_text)
    now = uow.clock.now()
    row = GuardrailRow(
        id=new_id(),
        name=name,
        description=description,
        policy_text=policy_text,
        ou_id=_target_id(uow, "ou", ou),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(row)
    uow.flush_or_conflict(f"guardrail '{name}' already exists")
    bump_policy_epoch(uow)
    return _guardrail_to_schema(row, org.get_ou(uow, row.ou_id).path)


def get_guardrail(uow: UnitOfWork, name: str) -> Guardrail:
    row = _guardrail_row(uow, name)
    return _guardrail_to_schema(row, org.get_ou(uow, row.ou_id).path)


def list_guardrails(uow: UnitOfWork) -> list[Guardrail]:
    rows = uow.session.scalars(select(GuardrailRow).order_by(GuardrailRow.name))
    ou_paths = {ou.id: ou.path for ou in org_snapshot(uow).ous.values()}
    return [_guardrail_to_schema(r, ou_paths[r.ou_id]) for r in rows]


def update_guardrail(
    uow: UnitOfWork, name: str, *, policy_text: str | None = None, description: str | None = None
) -> Guardrail:
    row = _guardrail_row(uow, name)
    if policy_text is not None:
        guardrail_templates(policy_text)
        row.policy_text = policy_text
    if description is not None:
        row.description = description
    row.updated_at = uow.clock.now()
    bump_policy_epoch(uow)
    return _guardrail_to_schema(row, org.get_ou(uow, row.ou_id).path)


def delete_guardrail(uow: UnitOfWork, name: str) -> None:
    uow.session.delete(_guardrail_row(uow, name))
    bump_policy_epoch(uow)


# -- facts for the engine -------------------------------------------------------------


def current_version(uow: UnitOfWork) -> tuple[int, int]:
    """(iam policy epoch, org revision): moves with every change a decision depends on."""
    return policy_epoch(uow), org.revision(uow)


def load_access_facts(uow: UnitOfWork, version: tuple[int, int]) -> AccessFacts:
    """Everything a decision depends on, read in the caller's transaction at ``version``."""
    users = {
        u.id: u.name
        for u in uow.session.scalars(select(UserRow).where(UserRow.disabled.is_(False)))
    }
    groups = {g.id: g.name for g in uow.session.scalars(select(GroupRow))}
    memberships: dict[str, list[str]] = {name: [] for name in users.values()}
    for member in uow.session.scalars(select(GroupMemberRow)):
        if member.user_id in users:
            memberships[users[member.user_id]].append(groups[member.group_id])
    sets = {
        r.id: PermissionSetFacts(
            r.id,
            r.name,
            r.policy_text,
            tuple(r.allowed_cidrs) if r.allowed_cidrs is not None else None,
        )
        for r in uow.session.scalars(select(PermissionSetRow))
    }
    assignments = []
    for row in uow.session.scalars(select(AssignmentRow)):
        principal = (
            users.get(row.principal_id)
            if row.principal_type == "user"
            else groups.get(row.principal_id)
        )
        if principal is not None:
            assignments.append(
                AssignmentFacts(
                    row.id,
                    row.permission_set_id,
                    row.principal_type,
                    principal,
                    row.target_type,
                    row.target_id,
                )
            )
    guardrails = tuple(
        GuardrailFacts(r.id, r.name, r.policy_text, r.ou_id)
        for r in uow.session.scalars(select(GuardrailRow))
    )
    settings = uow.session.get(IamSettingsRow, 1)
    cidrs = settings.allowed_cidrs if settings is not None else None
    return AccessFacts(
        version=version,
        org=org_snapshot(uow),
        user_groups={name: tuple(sorted(g)) for name, g in memberships.items()},
        groups=tuple(sorted(groups.values())),
        permission_sets=sets,
        assignments=tuple(assignments),
        guardrails=guardrails,
        allowed_cidrs=tuple(cidrs) if cidrs is not None else None,
    )
