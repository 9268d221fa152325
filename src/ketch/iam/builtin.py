"""Built-in permission sets, the system's own policies, and example guardrails.

Built-in sets are created at bootstrap and cannot be changed or deleted; custom sets
sit next to them. System policies are always part of the policy set: they express
rules no assignment can lift (read-only and account-limited tokens, no
self-escalation).
"""

from __future__ import annotations

from dataclasses import dataclass

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


_SELF_CHANGES = _actions(Action.ADD_GROUP_MEMBER, Action.CREATE_ASSIGNMENT)
_GUARDRAIL_CHANGES = _actions(
    Action.CREATE_GUARDRAIL, Action.UPDATE_GUARDRAIL, Action.DELETE_GUARDRAIL
)
_WHO_AM_I = action_ref(Action.GET_CALLER_IDENTITY)
_OWN_TOKENS = _actions(Action.CREATE_TOKEN, Action.LIST_TOKENS, Action.REVOKE_TOKEN)

SYSTEM_POLICIES: dict[str, str] = {
    "system.caller-identity": (
        f"permit(principal, action == {_WHO_AM_I}, resource) when {{ resource == principal }};"
    ),
    "system.own-tokens": (
        f"permit(principal, {_OWN_TOKENS}, resource) when {{ resource == principal }};"
    ),
    "system.no-self-delete": (
        f"forbid(principal, action == {action_ref(Action.DELETE_USER)}, resource) "
        "when { resource == principal };"
    ),
    "system.read-only-token": (
        "forbid(principal, action, resource) when { context.token_read_only } "
        f"unless {{ {_group('ReadOnlyActions')} }};"
    ),
    "system.account-limited-token": (
        "forbid(principal, action, resource) when { context.token_account_limited && "
        f"!context.token_accounts.contains(context.account) }} unless {{ action == {_WHO_AM_I} }};"
    ),
    "system.no-self-escalation": (
        f"forbid(principal, {_SELF_CHANGES}, resource) when {{ context.subject_is_caller }};"
    ),
    "system.no-own-guardrail-edits": (
        f"forbid(principal, {_GUARDRAIL_CHANGES}, resource) when "
        "{ context.guardrail_governs_caller && !context.caller_is_org_admin };"
    ),
}
"""Policies every decision includes, by id. ``tests/iam`` proves each one."""

INSTANCE_RANKS: dict[str, int] = {
    "cpu.small": 1,
    "cpu.medium": 2,
    "cpu.large": 3,
    "cpu.xlarge": 4,
    "cpu.2xlarge": 5,
    "gpu.small": 6,
    "gpu.large": 7,
}
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
