"""The per-process authoriser: cached Cedar handles, request context, decisions.

One :class:`Authorizer` lives in the server's context. Each check reads the iam policy
epoch and the org revision (two single-row queries) and rebuilds the compiled policies
only when either moved, so a change to identities, assignments, guardrails, OUs or
accounts holds from the very next request while steady-state decisions reuse
pre-parsed handles.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ketch.core.errors import NotFound
from ketch.iam.access import current_version, load_access_facts
from ketch.iam.actions import Action
from ketch.iam.builtin import INSTANCE_RANKS
from ketch.iam.engine import CompiledPolicies, Decision, ResourceRef, compile_policies, ip_value
from ketch.iam.identity import Caller
from ketch.store.session import UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the transport knows about a request and the handler knows about its target."""

    source_ip: str = "127.0.0.1"
    subject_is_caller: bool = False
    guardrail_governs_caller: bool = False
    instance_type: str | None = None


@dataclass
class Authorizer:
    """Decides requests against the organisation's policies, compiled once per epoch."""

    _compiled: CompiledPolicies | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def compiled(self, uow: UnitOfWork) -> CompiledPolicies:
        version = current_version(uow)
        current = self._compiled
        if current is not None and current.version == version:
            return current
        with self._lock:
            current = self._compiled
            if current is None or current.version != version:
                current = compile_policies(load_access_facts(uow, version))
                self._compiled = current
                logger.debug("compiled policies at version %s", version)
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
        return decide(self.compiled(uow), caller, action, resource, account=account, facts=facts)


def decide(
    compiled: CompiledPolicies,
    caller: Caller,
    action: Action,
    resource: ResourceRef,
    *,
    account: str | None,
    facts: RequestFacts,
) -> Decision:
    """One decision on already compiled policies (no database access)."""
    context = request_context(compiled, caller, account=account, facts=facts)
    return compiled.decide(principal=caller.name, action=action, resource=resource, context=context)


@lru_cache(maxsize=4096)
def _source_ip(address: str) -> str:
    """``address`` normalised (parsing costs microseconds, and clients come back)."""
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
        "caller_is_org_admin": caller.name in compiled.org_admins,
        "guardrail_governs_caller": facts.guardrail_governs_caller,
    }
    if facts.instance_type is not None:
        context["instance_type"] = facts.instance_type
        context["instance_rank"] = INSTANCE_RANKS.get(
            facts.instance_type, max(INSTANCE_RANKS.values()) + 1
        )
    return context


def move_escapes_guardrails(
    compiled: CompiledPolicies,
    caller: Caller,
    source_ou: str,
    destination_ou: str | None,
    *,
    restages: bool = False,
) -> bool:
    """Whether moving something from below ``source_ou`` to below ``destination_ou`` (or
    changing its stage, which stage-conditioned guardrails read) would take it out from
    under a guardrail that governs the caller.

    Guardrails attached at ``source_ou`` or above and not also above the destination are
    left behind by the move; with ``restages`` every guardrail above the source counts.
    """
    above_source = set(_ou_chain(compiled, source_ou))
    above_destination = (
        set(_ou_chain(compiled, destination_ou)) if destination_ou is not None else above_source
    )
    for guardrail in compiled.facts.guardrails:
        if guardrail.ou_id not in above_source:
            continue
        left_behind = guardrail.ou_id not in above_destination
        if (left_behind or restages) and guardrail_governs(compiled, caller, guardrail.ou_id):
            return True
    return False


def _ou_chain(compiled: CompiledPolicies, ou_id: str) -> list[str]:
    """``ou_id`` and its ancestors up to the root."""
    ous = compiled.facts.org.ous
    chain: list[str] = []
    current: str | None = ou_id
    while current is not None and current in ous:
        chain.append(current)
        current = ous[current].parent_id
    return chain


def is_caller_or_own_group(
    compiled: CompiledPolicies, caller: Caller, principal_type: str, principal: str
) -> bool:
    """Whether an identity change names the caller itself or a group the caller is in."""
    if principal_type == "user":
        return principal == caller.name
    return principal in compiled.facts.user_groups.get(caller.name, ())


def guardrail_governs(compiled: CompiledPolicies, caller: Caller, ou_id: str) -> bool:
    """Whether a guardrail on ``ou_id`` could constrain anything the caller is assigned.

    True when one of the caller's assignments (direct or through a group) targets the
    OU, an OU on its path to the root, or anything below it: changing that guardrail
    would change the caller's own reach.
    """
    guarded = set(_ou_chain(compiled, ou_id))
    groups = set(compiled.facts.user_groups.get(caller.name, ()))
    for assignment in compiled.facts.assignments:
        holder = (
            assignment.principal_name == caller.name
            if assignment.principal_type == "user"
            else assignment.principal_name in groups
        )
        if not holder:
            continue
        if assignment.target_type == "account":
            account = compiled.facts.org.accounts.get(assignment.target_id)
            if account is not None and ou_id in _ou_chain(compiled, account.ou_id):
                return True
        elif assignment.target_id in guarded or ou_id in _ou_chain(compiled, assignment.target_id):
            return True
    return False


def assignment_resource(
    compiled: CompiledPolicies, entity_id: str, target_type: str, target: str
) -> tuple[ResourceRef, str | None]:
    """Where an assignment lives (in what it targets) and the account that owns it.

    ``target`` is an account id, or an OU path; :class:`NotFound` if it does not exist.
    """
    org = compiled.facts.org
    if target_type == "account":
        if target not in org.accounts:
            raise NotFound(f"account '{target}' does not exist")
        return ResourceRef("Assignment", entity_id, "Account", target), target
    return ResourceRef("Assignment", entity_id, "OU", ou_id_of(compiled, target)), None


def ou_id_of(compiled: CompiledPolicies, path: str) -> str:
    """The id of the OU at ``path`` (``""`` is the root); :class:`NotFound` if none."""
    ou_id = compiled.facts.org.ou_ids_by_path.get(path.strip("/"))
    if ou_id is None:
        raise NotFound(f"OU '{path}' does not exist")
    return ou_id
