"""The per-process authoriser: cached Cedar handles, request context, decisions.

One :class:`Authorizer` lives in the server's context. Each check reads the policy
epoch (one single-row query) and rebuilds the compiled policies only when it moved, so
a change to assignments, groups or guardrails holds from the very next request while
steady-state decisions reuse pre-parsed handles.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ketch.iam.access import load_access_facts, policy_epoch
from ketch.iam.actions import Action
from ketch.iam.builtin import INSTANCE_RANKS
from ketch.iam.engine import CompiledPolicies, Decision, ResourceRef, compile_policies, ip_value
from ketch.iam.identity import Caller
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)

ORG_ADMIN_SET = "OrgAdmin"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the transport knows about a request and the handler knows about its target."""

    source_ip: str = "127.0.0.1"
    subject_is_caller: bool = False
    guardrail_governs_caller: bool = False
    instance_type: str | None = None
    target_stage: str | None = None


@dataclass
class Authorizer:
    """Decides requests against the organisation's policies, compiled once per epoch."""

    _compiled: CompiledPolicies | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def compiled(self, uow: UnitOfWork) -> CompiledPolicies:
        epoch = policy_epoch(uow)
        current = self._compiled
        if current is not None and current.epoch == epoch:
            return current
        with self._lock:
            current = self._compiled
            if current is None or current.epoch != epoch:
                current = compile_policies(load_access_facts(uow))
                self._compiled = current
                logger.debug("compiled policies at epoch %s", epoch)
            return current

    def check(
        self,
        uow: UnitOfWork,
        caller: Caller,
        action: Action,
        resource: ResourceRef,
        *,
        account: str | None,
        facts: RequestFacts,
    ) -> Decision:
        compiled = self.compiled(uow)
        context = request_context(compiled, caller, account=account, facts=facts)
        return compiled.decide(
            principal=caller.name, action=action, resource=resource, context=context
        )


def is_org_admin(compiled: CompiledPolicies, user: str) -> bool:
    """Whether ``user`` holds OrgAdmin on the root OU, directly or through a group."""
    facts = compiled.facts
    groups = set(facts.user_groups.get(user, ()))
    for assignment in facts.assignments:
        if (
            facts.permission_sets[assignment.permission_set_id].name == ORG_ADMIN_SET
            and assignment.target_type == "ou"
            and assignment.target_id == facts.org.root_ou_id
            and (
                (assignment.principal_type == "user" and assignment.principal_name == user)
                or (assignment.principal_type == "group" and assignment.principal_name in groups)
            )
        ):
            return True
    return False


def _source_ip(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return "0.0.0.0"  # noqa: S104 (unknown source: matches no allow-list range)


def request_context(
    compiled: CompiledPolicies, caller: Caller, *, account: str | None, facts: RequestFacts
) -> dict[str, Any]:
    """The Cedar context of a request; ``account`` is the resource's stored owner."""
    stage = ""
    if account is not None and account in compiled.facts.org.accounts:
        stage = compiled.facts.org.accounts[account].stage
    context: dict[str, Any] = {
        "source_ip": ip_value(_source_ip(facts.source_ip)),
        "account": account or "",
        "account_stage": stage,
        "token_read_only": caller.token_read_only,
        "token_account_limited": caller.token_accounts is not None,
        "token_accounts": list(caller.token_accounts or ()),
        "subject_is_caller": facts.subject_is_caller,
        "caller_is_org_admin": is_org_admin(compiled, caller.name),
        "guardrail_governs_caller": facts.guardrail_governs_caller,
    }
    if facts.instance_type is not None:
        context["instance_type"] = facts.instance_type
        context["instance_rank"] = INSTANCE_RANKS.get(
            facts.instance_type, max(INSTANCE_RANKS.values()) + 1
        )
    if facts.target_stage is not None:
        context["target_stage"] = facts.target_stage
    return context
