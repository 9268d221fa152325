"""Built-in permission sets, the system's own policies, and example guardrails.

Built-in sets are created at bootstrap and cannot be changed or deleted; custom sets
sit next to them. System policies express rules no assignment can lift (read-only and
account-limited tokens, no self-escalation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ketch.core.instances import INSTANCE_TYPES
from ketch.iam.actions import Action
from ketch.iam.cedar_schema import action_ref

_SCOPE = "principal in ?principal, {actions}, resource in ?resource"


def _permit(actions: str, condition: str = "") -> str:
    when = f" when {{ {condition} }}" if condition else ""
    return f"permit({_SCOPE.format(actions=actions)}){when};"


def _group(name: str) -> str:
    return f"action in {action_ref(name)}"


def _actions(*actions: Action) -> str:
    return "action in [" + ", ".join(action_ref(a) for a in actions) + "]"


@dataclass(frozen=True)
class BuiltinSet:
    name: str
    description: str
    policy_text: str


ORG_ADMIN_SET = "OrgAdmin"
"""Held on the root OU, it makes an organisation admin (``Whoami.is_org_admin``)."""

BUILTIN_SETS: tuple[BuiltinSet, ...] = (
    BuiltinSet(
        ORG_ADMIN_SET,
        "Everything, wherever it is assigned (on the root OU: the whole organisation).",
        "permit(principal in ?principal, action, resource in ?resource);",
    ),
    BuiltinSet(
        "AccountAdmin",
        "Everything inside the accounts it is assigned to: jobs, tracking, models, deployments.",
        "\n".join(
            (
                _permit(_group("ReadOnlyActions")),
                _permit(_group("DataScienceActions")),
                _permit(_group("DeployActions")),
                _permit(_group("ApproveActions")),
                _permit(_actions(Action.UPDATE_ACCOUNT)),
            )
        ),
    ),
    BuiltinSet(
        "DataScientist",
        "Run jobs, track experiments, register models, deploy to stages other than prod.",
        "\n".join(
            (
                _permit(_group("ReadOnlyActions")),
                _permit(_group("DataScienceActions")),
                _permit(_group("DeployActions"), 'context.account_stage != "prod"'),
            )
        ),
    ),
    BuiltinSet(
        "MLEngineer",
        "Approve models and deploy them, prod included.",
        "\n".join(
            (
                _permit(_group("ReadOnlyActions")),
                _permit(_group("ApproveActions")),
                _permit(_group("DeployActions")),
                _permit(_actions(Action.INVOKE_ENDPOINT)),
            )
        ),
    ),
    BuiltinSet(
        "ReadOnly",
        "Describe and list everything, change nothing.",
        _permit(_group("ReadOnlyActions")),
    ),
)


@dataclass(frozen=True)
class SystemPolicy:
    """A rule no assignment can lift, and what a request needs for the rule to apply.

    Cedar evaluates every policy it is handed, so the engine hands it a system policy
    only when the request's action is one of ``actions`` (any action when ``None``) and
    each context flag of ``flags`` is true: otherwise the policy's own scope or
    condition rules it out. ``text`` is written from the same ``actions`` and
    ``flags``, so the two cannot drift apart.
    """

    text: str
    actions: frozenset[Action] | None = None
    flags: tuple[str, ...] = ()


_WHO_AM_I = frozenset({Action.GET_CALLER_IDENTITY})
_OWN_TOKENS = frozenset({Action.CREATE_TOKEN, Action.LIST_TOKENS, Action.REVOKE_TOKEN})
_DELETE_USER = frozenset({Action.DELETE_USER})
_SELF_CHANGES = frozenset({Action.ADD_GROUP_MEMBER, Action.CREATE_ASSIGNMENT})
_GUARDRAIL_CHANGES = frozenset(
    {
        Action.CREATE_GUARDRAIL,
        Action.UPDATE_GUARDRAIL,
        Action.DELETE_GUARDRAIL,
        Action.UPDATE_ACCOUNT,  # flagged only when a move or a new stage escapes a guardrail
        Action.UPDATE_OU,
    }
)


def _in(actions: frozenset[Action]) -> str:
    return _actions(*sorted(actions))


SYSTEM_POLICIES: dict[str, SystemPolicy] = {
    "system.caller-identity": SystemPolicy(
        f"permit(principal, {_in(_WHO_AM_I)}, resource) when {{ resource == principal }};",
        actions=_WHO_AM_I,
    ),
    "system.own-tokens": SystemPolicy(
        f"permit(principal, {_in(_OWN_TOKENS)}, resource) when {{ resource == principal }};",
        actions=_OWN_TOKENS,
    ),
    "system.no-self-delete": SystemPolicy(
        f"forbid(principal, {_in(_DELETE_USER)}, resource) when {{ resource == principal }};",
        actions=_DELETE_USER,
    ),
    "system.read-only-token": SystemPolicy(
        "forbid(principal, action, resource) when { context.token_read_only } "
        f"unless {{ {_group('ReadOnlyActions')} }};",
        flags=("token_read_only",),
    ),
    "system.account-limited-token": SystemPolicy(
        "forbid(principal, action, resource) when { context.token_account_limited && "
        "!context.token_accounts.contains(context.account) } "
        f"unless {{ {_in(_WHO_AM_I)} }};",
        flags=("token_account_limited",),
    ),
    "system.no-self-escalation": SystemPolicy(
        f"forbid(principal, {_in(_SELF_CHANGES)}, resource) when {{ context.subject_is_caller }};",
        actions=_SELF_CHANGES,
        flags=("subject_is_caller",),
    ),
    "system.no-own-guardrail-edits": SystemPolicy(
        f"forbid(principal, {_in(_GUARDRAIL_CHANGES)}, resource) when "
        "{ context.guardrail_governs_caller && !context.caller_is_org_admin };",
        actions=_GUARDRAIL_CHANGES,
        flags=("guardrail_governs_caller",),
    ),
}
"""Policies that hold for every request they may apply to, by id. ``tests/iam`` proves
each one, and that leaving out those that cannot apply changes no decision."""

_SYSTEM_FLAGS_BY_ACTION: dict[Action, tuple[tuple[str, tuple[str, ...]], ...]] = {
    action: tuple(
        (policy_id, policy.flags)
        for policy_id, policy in SYSTEM_POLICIES.items()
        if policy.actions is None or action in policy.actions
    )
    for action in Action
}
"""For each action, the system policies its requests may meet and the flags each needs."""


def applicable_system_policies(action: Action, context: dict[str, Any]) -> tuple[str, ...]:
    """The ids of the system policies that may apply to a request (see :class:`SystemPolicy`)."""
    applicable: list[str] = []
    for policy_id, flags in _SYSTEM_FLAGS_BY_ACTION[action]:
        for flag in flags:
            if context.get(flag) is not True:
                break
        else:
            applicable.append(policy_id)
    return tuple(applicable)


INSTANCE_RANKS: dict[str, int] = {name: t.rank for name, t in INSTANCE_TYPES.items()}
"""Instance types by size, carried in the request context as ``instance_rank``."""

EXAMPLE_GUARDRAILS: dict[str, str] = {
    "prod-endpoint-deletes-by-release-only": (
        f"forbid(principal, action == {action_ref(Action.DELETE_ENDPOINT)}, resource in ?resource) "
        'unless { principal in Ketch::Group::"release" };'
    ),
    "sandbox-instance-size-limit": (
        "forbid(principal, "
        + _actions(Action.CREATE_TRAINING_JOB, Action.CREATE_PROCESSING_JOB, Action.CREATE_ENDPOINT)
        + ', resource in ?resource) when { context.account_stage == "sandbox" && '
        f"context has instance_rank && context.instance_rank > {INSTANCE_RANKS['cpu.large']} }};"
    ),
}
"""Guardrails shipped as examples (``ketch guardrails create --example NAME``)."""
