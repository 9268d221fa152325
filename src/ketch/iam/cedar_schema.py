"""Ketch's Cedar schema, generated from the action catalogue.

Every policy (permission sets, guardrails, the system's own) is validated against this
schema in strict mode before it is stored, so a typo in an action or entity type is an
error at write time rather than a policy that silently never matches.

The entity hierarchy mirrors the organisation: OUs form a tree under the root OU;
accounts sit in an OU; account-owned resources sit in their account; organisation-level
resources (users, groups, permission sets, assignments, guardrails, the organisation
itself) sit directly in the root OU, so an assignment on the root OU reaches everything.
"""

from __future__ import annotations

from functools import cache

from ketch.iam.actions import (
    ACCOUNT_RESOURCE_TYPES,
    ACTION_SPECS,
    Action,
)

NAMESPACE = "Ketch"

READ_ONLY_GROUP = "ReadOnlyActions"
"""Action group holding every read-only action (used by ReadOnly and read-only tokens)."""

ACTION_GROUPS: dict[str, frozenset[Action]] = {
    READ_ONLY_GROUP: frozenset(a for a, spec in ACTION_SPECS.items() if spec.read_only),
    "DataScienceActions": frozenset(
        {
            Action.PUT_ARTIFACT,
            Action.DELETE_ARTIFACT,
            Action.CREATE_TRAINING_JOB,
            Action.STOP_TRAINING_JOB,
            Action.CREATE_PROCESSING_JOB,
            Action.STOP_PROCESSING_JOB,
            Action.CREATE_EXPERIMENT,
            Action.LOG_RUN,
            Action.CREATE_MODEL_GROUP,
            Action.CREATE_MODEL_VERSION,
            Action.INVOKE_ENDPOINT,
        }
    ),
    "DeployActions": frozenset(
        {Action.CREATE_ENDPOINT, Action.UPDATE_ENDPOINT, Action.DELETE_ENDPOINT}
    ),
    "ApproveActions": frozenset({Action.APPROVE_MODEL_VERSION}),
}

CONTEXT_TYPE = """{
    source_ip: ipaddr,
    account: String,
    account_stage: String,
    token_read_only: Bool,
    token_account_limited: Bool,
    token_accounts: Set<String>,
    subject_is_caller: Bool,
    caller_is_org_admin: Bool,
    guardrail_governs_caller: Bool,
    instance_type?: String,
    instance_rank?: Long,
}"""
"""Attributes every request carries.

``account``/``account_stage`` are those of the resource's stored owner ("" for
organisation-level resources). ``subject_is_caller`` is true when an identity change
targets the caller itself or a group it belongs to (self-escalation);
``guardrail_governs_caller`` when a guardrail change would alter the caller's own
reach. ``instance_rank`` orders instance types by size for guardrails such as
"no more than cpu.large in sandboxes".
"""

_ENTITY_DECLARATIONS = f"""
    entity OU in [OU] = {{ name: String, path: String }};
    entity Organization in [OU] = {{ name: String }};
    entity Account in [OU] = {{ stage: String, status: String }};
    entity Group in [OU] = {{ name: String }};
    entity User in [Group, OU] = {{ name: String }};
    entity PermissionSet, Guardrail in [OU];
    entity Assignment in [OU, Account];
    entity {", ".join(sorted(ACCOUNT_RESOURCE_TYPES))} in [Account];
    type RequestContext = {CONTEXT_TYPE};
"""


def resource_types(action: Action) -> list[str]:
    """The Cedar entity types ``action`` may be asked of."""
    spec = ACTION_SPECS[action]
    types = {spec.resource_type}
    if action.value.startswith("List"):
        # Lists are asked of the container they list from: the organisation or an account.
        types.add("Organization")
        if spec.resource_type in ACCOUNT_RESOURCE_TYPES:
            types.add("Account")
    if action.value.startswith("Create") and spec.resource_type in ACCOUNT_RESOURCE_TYPES:
        types.add("Account")
    return sorted(types)


def _group_of(action: Action) -> list[str]:
    return sorted(name for name, members in ACTION_GROUPS.items() if action in members)


@cache
def schema_text() -> str:
    """The Cedar schema (human-readable syntax) for every action in the catalogue."""
    lines = [f"namespace {NAMESPACE} {{", _ENTITY_DECLARATIONS]
    lines += [f'    action "{group}";' for group in sorted(ACTION_GROUPS)]
    for action in Action:
        groups = _group_of(action)
        membership = f" in [{', '.join(repr_str(g) for g in groups)}]" if groups else ""
        lines.append(
            f'    action "{action.value}"{membership} appliesTo {{\n'
            f"        principal: [User],\n"
            f"        resource: [{', '.join(resource_types(action))}],\n"
            f"        context: RequestContext\n"
            f"    }};"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def repr_str(value: str) -> str:
    """A Cedar string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def entity_ref(entity_type: str, entity_id: str) -> str:
    """A Cedar entity reference such as ``Ketch::Account::"fraud-dev"``."""
    return f"{NAMESPACE}::{entity_type}::{repr_str(entity_id)}"


def action_ref(action: Action | str) -> str:
    return entity_ref("Action", str(action))
