"""The policy simulator: how a request *would* be decided, and which policies decided it.

Like AWS's policy simulator, it evaluates the organisation's live policies for any
principal, action and resource (named by KRN) without performing the action, and
explains the outcome with the policies behind it: the permits that allowed it, the
forbids (guardrails, system rules, the network guard) that denied it, or the absence of
any permit.
"""

from __future__ import annotations

import difflib
import re

from ketch.core.errors import InvalidInput, NotFound
from ketch.core.krn import Krn
from ketch.iam.access import get_assignment, get_guardrail
from ketch.iam.actions import ACCOUNT_RESOURCE_TYPES, Action
from ketch.iam.authorizer import RequestFacts, assignment_resource, decide, ou_id_of
from ketch.iam.cedar_schema import resource_types
from ketch.iam.engine import CompiledPolicies, Decision, ResourceRef
from ketch.iam.identity import Caller, user_id_of
from ketch.schemas.iam import DecidingPolicy, SimulationRequest, SimulationResult
from ketch.store.session import UnitOfWork


def _kebab(entity_type: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", entity_type).lower()


ORG_KRN_TYPES = {
    "organization": "Organization",
    "ou": "OU",
    "account": "Account",
    "user": "User",
    "group": "Group",
    "permission-set": "PermissionSet",
    "assignment": "Assignment",
    "guardrail": "Guardrail",
}
ACCOUNT_KRN_TYPES = {_kebab(t): t for t in ACCOUNT_RESOURCE_TYPES}
"""KRN resource types of account-owned resources (``training-job`` -> ``TrainingJob``)."""


def parse_action(name: str) -> Action:
    try:
        return Action(name)
    except ValueError:
        close = difflib.get_close_matches(name, [a.value for a in Action], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InvalidInput(f"unknown action '{name[:64]}'{hint}") from None


def _resource_of(
    uow: UnitOfWork, compiled: CompiledPolicies, text: str
) -> tuple[ResourceRef, str | None]:
    """The Cedar entity and stored owner account a KRN names."""
    parsed = Krn.parse(text)
    org = compiled.facts.org
    root = org.root_ou_id
    kind = parsed.resource_type
    if kind in ACCOUNT_KRN_TYPES:
        if not parsed.account:
            raise InvalidInput(f"a {kind} KRN names its account: krn:ketch:<account>:{kind}/...")
        if parsed.account not in org.accounts:
            raise NotFound(f"account '{parsed.account}' does not exist")
        entity = ResourceRef(ACCOUNT_KRN_TYPES[kind], text, "Account", parsed.account)
        return entity, parsed.account
    if kind not in ORG_KRN_TYPES:
        known = ", ".join(sorted([*ORG_KRN_TYPES, *ACCOUNT_KRN_TYPES]))
        raise InvalidInput(f"unknown KRN resource type '{kind}'; known types: {known}")
    if parsed.account:
        raise InvalidInput(f"a {kind} belongs to the organisation: krn:ketch::{kind}/...")
    if kind == "organization":
        return ResourceRef("Organization", org.organization_id), None
    if kind == "ou":
        return ResourceRef(
            "OU", ou_id_of(compiled, "" if parsed.name == "root" else parsed.name)
        ), None
    if kind == "account":
        if parsed.name not in org.accounts:
            raise NotFound(f"account '{parsed.name}' does not exist")
        return ResourceRef("Account", parsed.name), parsed.name
    if kind == "guardrail":
        ou_id = ou_id_of(compiled, get_guardrail(uow, parsed.name).ou)
        return ResourceRef("Guardrail", parsed.name, "OU", ou_id), None
    if kind == "assignment":
        assignment = get_assignment(uow, parsed.name)
        return assignment_resource(
            compiled, assignment.id, assignment.target_type, assignment.target
        )
    return ResourceRef(ORG_KRN_TYPES[kind], parsed.name, "OU", root), None


def _explain(decision: Decision, policies: list[DecidingPolicy], subject: str) -> str:
    if decision.errors:
        return f"Denied: evaluating a policy failed, and a failing policy never allows ({subject})."
    if decision.allowed:
        return f"Allowed by {len(policies)} permit polic{'y' if len(policies) == 1 else 'ies'}."
    if policies:
        names = ", ".join(f"{p.kind} {p.name}" for p in policies)
        return f"Denied explicitly by {names}: a forbid overrides every permit."
    return f"Denied implicitly: no permission set assigned to {subject} allows this."


def simulate(
    uow: UnitOfWork, compiled: CompiledPolicies, request: SimulationRequest
) -> SimulationResult:
    """Decide ``request`` against ``compiled`` as if its principal had sent it."""
    action = parse_action(request.action)
    caller = Caller(user_id=user_id_of(uow, request.principal), name=request.principal)
    resource, account = _resource_of(uow, compiled, request.resource)
    allowed_types = resource_types(action)
    if resource.type not in allowed_types:
        raise InvalidInput(
            f"{action.value} acts on {' or '.join(allowed_types)}, not on {resource.type}"
        )
    facts = RequestFacts(source_ip=request.source_ip, instance_type=request.instance_type)
    decision = decide(compiled, caller, action, resource, account=account, facts=facts)
    policies = []
    for policy_id in decision.policy_ids:
        source = compiled.sources.get(policy_id)
        policies.append(
            DecidingPolicy(
                id=policy_id,
                kind=source.kind if source else "unknown",
                name=source.name if source else policy_id,
                detail=source.detail if source else "",
            )
        )
    return SimulationResult(
        decision="Allow" if decision.allowed else "Deny",
        deciding_policies=policies,
        errors=list(decision.errors),
        explanation=_explain(decision, policies, request.principal),
    )
