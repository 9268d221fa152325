"""The Cedar decision engine: compile the organisation's policies once, decide fast.

``compile_policies`` turns one :class:`AccessFacts` (everything that can change a
decision, read at one policy epoch) into pre-parsed ``Entities`` and the policies in
Cedar's JSON format. Permission sets and guardrails are templates; assignments and
guardrail attachments are template links.

Cedar evaluates every policy of a set on every request, and parses every attribute of
the request's context, so a decision on the whole organisation would cost time in
proportion to its assignments. Instead a request is decided on a pre-parsed
``PolicySet`` built for its principal, the resource's path to the root, the action and
the system policies that may apply (once per epoch, then cached): those system policies
(:class:`~ketch.iam.builtin.SystemPolicy` says when one can), the network guard, and
only the links that can match, those naming the principal or one of its groups, linked
to an entity on that path (every template is scoped ``resource in ?resource``) and of a
template whose scope admits the action. The context carries only the attributes that
set reads (:mod:`ketch.iam.policy_use`). A resource the entities do not hold (a job
being created, say) is decided on a small entity slice kept with the set: the
principal and its groups, the action and its groups, the resource's ancestors and the
entities the policies name; for a type the entities never hold, with a stand-in for the
resource, so that nothing is parsed per request. Copying the whole entity set per
request would cost milliseconds. ``tests/iam/test_scenario.py`` proves every shortcut
decides as Cedar does on the whole organisation.

``decide`` never fails open: a decision whose evaluation reported an error is a deny,
and is logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from ketch.iam.actions import Action
from ketch.iam.builtin import ORG_ADMIN_SET, SYSTEM_POLICIES, applicable_system_policies
from ketch.iam.cedar_schema import ACTION_GROUPS, NAMESPACE
from ketch.iam.policy_text import condition_of, guardrail_templates, permission_set_templates
from ketch.iam.policy_use import action_scope, context_keys, entities_named
from ketch.org import OrgSnapshot

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PermissionSetFacts:
    id: str
    name: str
    policy_text: str
    allowed_cidrs: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class AssignmentFacts:
    id: str
    permission_set_id: str
    principal_type: str  # "user" | "group"
    principal_name: str
    target_type: str  # "account" | "ou"
    target_id: str


@dataclass(frozen=True, slots=True)
class GuardrailFacts:
    id: str
    name: str
    policy_text: str
    ou_id: str


@dataclass(frozen=True)
class AccessFacts:
    """Everything a decision depends on, as read at one version.

    ``version`` is (iam policy epoch, org revision): it moves with every change.
    """

    version: tuple[int, int]
    org: OrgSnapshot
    user_groups: dict[str, tuple[str, ...]]  # user name -> group names
    groups: tuple[str, ...]
    permission_sets: dict[str, PermissionSetFacts]
    assignments: tuple[AssignmentFacts, ...]
    guardrails: tuple[GuardrailFacts, ...]
    allowed_cidrs: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class PolicySource:
    """Where a policy of the compiled set came from, for explanations and the audit trail."""

    kind: str  # "system" | "network" | "permission-set" | "guardrail"
    name: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """The resource of a request: a Cedar entity and its stored container."""

    type: str
    id: str
    parent_type: str | None = None
    parent_id: str | None = None


EntityKey = tuple[str, str]
"""(entity type without namespace, entity id)."""


@dataclass(slots=True)
class RequestPolicies:
    """The policies a kind of request is decided on, what they read, and its entity slices.

    One per (principal, the resource's path, action, system policies): the path fixes
    the container of a new resource, so the slices kept here are those of its requests.
    """

    policy_set: cedarpy.PolicySet
    context_keys: frozenset[str] | None
    """Only these go to Cedar (parsing the context is most of a decision); ``None``: all."""
    named: frozenset[EntityKey]
    """The entities the policies name literally."""
    named_types: frozenset[str]
    slices: dict[str, cedarpy.Entities] = field(default_factory=dict)
    """Entity slices built on first use: ``""`` around a new resource, else by the type
    of the stand-in they hold (see ``CompiledPolicies.stand_in_slice``)."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()


def uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{entity_type}", "id": entity_id}


def ip_value(address: str) -> dict[str, Any]:
    return {"__extn": {"fn": "ip", "arg": address}}


LINK_TARGET_TYPES = frozenset({"Account", "OU"})
"""What assignments and guardrails are linked to (``?resource``)."""
PolicySetKey = tuple[str, frozenset[EntityKey], str, tuple[str, ...]]
"""(principal, the resource's path, action, the system policies that may apply)."""
STORED_ENTITY_TYPES = frozenset({"Organization", "OU", "Account", "Action", "Group", "User"})
"""The entity types the compiled entities hold (see ``_entities``)."""
STAND_IN_ID = "*"
"""The id of the stand-in for a resource of a type never stored (see ``stand_in_slice``)."""
MAX_CACHED_POLICY_SETS = 50_000
"""Policy sets (and their entity slices) kept per epoch; emptied when full."""


@dataclass
class CompiledPolicies:
    """Pre-parsed Cedar handles for one epoch, plus what each policy id means."""

    facts: AccessFacts
    entities: cedarpy.Entities
    known: frozenset[EntityKey]
    sources: dict[str, PolicySource] = field(default_factory=dict)
    org_admins: frozenset[str] = frozenset()
    """Users holding OrgAdmin on the root OU, directly or through a group."""
    static: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, Any] = field(default_factory=dict)
    shared_links: list[dict[str, Any]] = field(default_factory=list)
    """Links every principal is subject to (guardrails)."""
    links_by_principal: dict[EntityKey, list[dict[str, Any]]] = field(default_factory=dict)
    entity_json: dict[EntityKey, str] = field(default_factory=dict)
    entity_parents: dict[EntityKey, tuple[EntityKey, ...]] = field(default_factory=dict)
    template_actions: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """The actions each template's scope admits (``None``: every action)."""
    _policy_sets: dict[PolicySetKey, RequestPolicies] = field(default_factory=dict)
    _paths: dict[EntityKey, frozenset[EntityKey]] = field(default_factory=dict)

    @property
    def version(self) -> tuple[int, int]:
        return self.facts.version

    def policies_for(
        self, principal: str, resource: ResourceRef, action: Action, system: tuple[str, ...]
    ) -> RequestPolicies:
        """Every policy that can apply to ``principal`` doing ``action`` on ``resource``.

        ``system`` names the system policies that may apply to the request; the other
        static policies (the network guard) always do. Every template is scoped
        ``resource in ?resource``, so a link can only match a resource below (or at) the
        entity it links: links to anything off the resource's path to the root are left
        out, and so are links of templates whose scope does not admit ``action``. Parsed
        once per epoch for each (principal, path, action, system) and cached.
        """
        path = self._path_of(resource)
        key = (principal, path, action.value, system)
        cached = self._policy_sets.get(key)
        if cached is not None:
            return cached
        links = list(self.shared_links)
        for holder in (
            ("User", principal),
            *(("Group", g) for g in self.facts.user_groups.get(principal, ())),
        ):
            links += self.links_by_principal.get(holder, ())
        links = [
            link
            for link in links
            if _key(link["values"]["?resource"]) in path
            and _admits(self.template_actions[link["templateId"]], action)
        ]
        static = {
            policy_id: policy
            for policy_id, policy in self.static.items()
            if policy_id in system or policy_id not in SYSTEM_POLICIES
        }
        templates = {link["templateId"]: self.templates[link["templateId"]] for link in links}
        document = {"staticPolicies": static, "templates": templates, "templateLinks": links}
        parts = [*static.values(), *templates.values()]
        named = frozenset(
            _key({"type": entity_type, "id": entity_id})
            for entity_type, entity_id in entities_named([*parts, *links])
        )
        policies = RequestPolicies(
            policy_set=cedarpy.PolicySet.from_json_str(json.dumps(document)),
            context_keys=context_keys(parts),
            named=named,
            named_types=frozenset(entity_type for entity_type, _ in named),
        )
        if len(self._policy_sets) >= MAX_CACHED_POLICY_SETS:
            self._policy_sets.clear()
        self._policy_sets[key] = policies  # a race only builds it twice
        return policies

    def _path_of(self, resource: ResourceRef) -> frozenset[EntityKey]:
        """The accounts and OUs the resource is, or is (transitively) in: what links name.

        Only those, so that requests on different resources in one account share a set.
        """
        own: EntityKey = (resource.type, resource.id)
        if own in self.known:
            return self._path_of_known(own)
        path: frozenset[EntityKey] = frozenset()
        if resource.parent_type and resource.parent_id:
            path = self._path_of_known((resource.parent_type, resource.parent_id))
        return path | {own} if resource.type in LINK_TARGET_TYPES else path

    def _path_of_known(self, start: EntityKey) -> frozenset[EntityKey]:
        cached = self._paths.get(start)
        if cached is not None:
            return cached
        pending = [start]
        seen: set[EntityKey] = set()
        while pending:
            key = pending.pop()
            if key not in seen:
                seen.add(key)
                pending += self.entity_parents.get(key, ())
        path = frozenset(key for key in seen if key[0] in LINK_TARGET_TYPES)
        self._paths[start] = path  # bounded by the entities of the epoch
        return path

    def decide(
        self, *, principal: str, action: Action, resource: ResourceRef, context: dict[str, Any]
    ) -> Decision:
        system = applicable_system_policies(action, context)
        policies = self.policies_for(principal, resource, action, system)
        if policies.context_keys is not None:
            context = {key: context[key] for key in policies.context_keys if key in context}
        context_json = json.dumps(context, separators=(",", ":")) if context else ""
        subject = resource
        if (resource.type, resource.id) in self.known:
            entities = self.entities
        elif (
            resource.type in STORED_ENTITY_TYPES
            or resource.type in policies.named_types
            or "__entity" in context_json
        ):
            entities = self.entity_slice(principal, action, resource, policies)
        else:
            subject = ResourceRef(
                resource.type, STAND_IN_ID, resource.parent_type, resource.parent_id
            )
            entities = self.stand_in_slice(principal, action, resource, policies)
        decision = _evaluate(principal, action, subject, context_json, policies, entities)
        if decision.errors and subject is not resource:
            # The same decision; decided again so that the errors name the resource.
            entities = self.entity_slice(principal, action, resource, policies)
            decision = _evaluate(principal, action, resource, context_json, policies, entities)
        if decision.errors:
            # A forbid that errors is skipped by Cedar; for a guardrail that would fail open.
            logger.warning(
                "authorisation error for %s on %s: %s", action.value, resource.id, decision.errors
            )
        return decision

    def entity_slice(
        self, principal: str, action: Action, resource: ResourceRef, policies: RequestPolicies
    ) -> cedarpy.Entities:
        """The entities a request on a resource unknown to the set can depend on.

        The slice around the resource (principal, groups, action, the resource's
        ancestors, the entities its policies name, and their ancestors) is parsed once
        per epoch and kept with ``policies``; the resource is added to a copy.
        """
        around = policies.slices.get("")
        if around is None:
            pending: list[EntityKey] = [("User", principal), ("Action", action.value)]
            if resource.parent_type and resource.parent_id:
                pending.append((resource.parent_type, resource.parent_id))
            around = policies.slices[""] = self._parse_closure([*pending, *policies.named])
        return around.with_added_json_str("[" + json.dumps(_resource_entity(resource)) + "]")

    def stand_in_slice(
        self, principal: str, action: Action, resource: ResourceRef, policies: RequestPolicies
    ) -> cedarpy.Entities:
        """The entity slice with a stand-in for ``resource`` (id ``STAND_IN_ID``), kept.

        A resource of a type the entities never hold (a job, a model) has no attributes,
        no tags and no descendants, and is never the principal: a policy can tell it
        from another of its type in the same container only by comparing it with an
        entity the policy names. When no policy of the request's set names an entity of
        its type, one stand-in per (type, container) is decided exactly as the resource
        would be, and saves adding the resource to a copy of the slice on each request.
        """
        cached = policies.slices.get(resource.type)
        if cached is None:
            stand_in = ResourceRef(
                resource.type, STAND_IN_ID, resource.parent_type, resource.parent_id
            )
            cached = self.entity_slice(principal, action, stand_in, policies)
            policies.slices[resource.type] = cached
        return cached

    def _parse_closure(self, start: list[EntityKey]) -> cedarpy.Entities:
        """The stored entities among ``start`` and all their ancestors, parsed."""
        parts: list[str] = []
        seen: set[EntityKey] = set()
        pending = list(start)
        while pending:
            key = pending.pop()
            if key in seen or key not in self.entity_json:
                continue
            seen.add(key)
            parts.append(self.entity_json[key])
            pending += self.entity_parents[key]
        return cedarpy.Entities.from_json_str("[" + ",".join(parts) + "]")


def _evaluate(
    principal: str,
    action: Action,
    resource: ResourceRef,
    context_json: str,
    policies: RequestPolicies,
    entities: cedarpy.Entities,
) -> Decision:
    """One Cedar evaluation; an error anywhere makes it a deny."""
    request: dict[str, Any] = {
        "principal": uid("User", principal),
        "action": uid("Action", action.value),
        "resource": uid(resource.type, resource.id),
    }
    if context_json:  # an absent context is an empty one, and Cedar builds it faster
        request["context"] = context_json
    result = cedarpy.is_authorized(request, policies.policy_set, entities)
    diagnostics = result.diagnostics
    reasons = tuple(diagnostics.reasons)
    if errors := diagnostics.errors:
        return Decision(allowed=False, policy_ids=reasons, errors=tuple(map(str, errors)))
    return Decision(allowed=result.allowed, policy_ids=reasons)


def _resource_entity(resource: ResourceRef) -> dict[str, Any]:
    parents = (
        [uid(resource.parent_type, resource.parent_id)]
        if resource.parent_type and resource.parent_id
        else []
    )
    return {"uid": uid(resource.type, resource.id), "attrs": {}, "parents": parents}


def _entities(facts: AccessFacts) -> list[dict[str, Any]]:
    org = facts.org
    root = uid("OU", org.root_ou_id)
    entities: list[dict[str, Any]] = [
        {
            "uid": uid("Organization", org.organization_id),
            "attrs": {"name": org.organization_name},
            "parents": [root],
        }
    ]
    for ou in org.ous.values():
        entities.append(
            {
                "uid": uid("OU", ou.id),
                "attrs": {"name": ou.name, "path": ou.path},
                "parents": [uid("OU", ou.parent_id)] if ou.parent_id else [],
            }
        )
    for account in org.accounts.values():
        entities.append(
            {
                "uid": uid("Account", account.id),
                "attrs": {"stage": account.stage, "status": account.status},
                "parents": [uid("OU", account.ou_id)],
            }
        )
    # Action groups are a schema notion; without the schema the entities must carry them.
    for action in Action:
        action_groups = [name for name, members in ACTION_GROUPS.items() if action in members]
        entities.append(
            {
                "uid": uid("Action", action.value),
                "attrs": {},
                "parents": [uid("Action", g) for g in action_groups],
            }
        )
    entities += [{"uid": uid("Action", g), "attrs": {}, "parents": []} for g in ACTION_GROUPS]
    for group in facts.groups:
        entities.append({"uid": uid("Group", group), "attrs": {"name": group}, "parents": [root]})
    for user, groups in facts.user_groups.items():
        entities.append(
            {
                "uid": uid("User", user),
                "attrs": {"name": user},
                "parents": [root, *(uid("Group", g) for g in groups)],
            }
        )
    return entities


def _cidr_condition(cidrs: tuple[str, ...]) -> str:
    ranges = " || ".join(f'context.source_ip.isInRange(ip("{c}"))' for c in cidrs)
    return ranges or "false"


def compile_policies(facts: AccessFacts) -> CompiledPolicies:
    """Build the Cedar handles for ``facts`` (stored text was validated when written)."""
    static: dict[str, Any] = {}
    templates: dict[str, Any] = {}
    links: list[dict[str, Any]] = []  # guardrail attachments: they hold for everyone
    principal_links: list[dict[str, Any]] = []  # assignments: they name their principal
    sources: dict[str, PolicySource] = {}
    for policy_id, policy in SYSTEM_POLICIES.items():
        parsed = json.loads(cedarpy.policies_to_json_str(policy.text))
        static[policy_id] = parsed["staticPolicies"]["policy0"]
        sources[policy_id] = PolicySource("system", policy_id)
    if facts.allowed_cidrs is not None:
        guard = json.loads(
            cedarpy.policies_to_json_str(
                "forbid(principal, action, resource) unless "
                f"{{ {_cidr_condition(facts.allowed_cidrs)} }};"
            )
        )
        static["network.organization"] = guard["staticPolicies"]["policy0"]
        sources["network.organization"] = PolicySource(
            "network", "organization allow-list", ", ".join(facts.allowed_cidrs)
        )

    set_templates: dict[str, list[str]] = {}
    for ps in facts.permission_sets.values():
        ids = []
        for index, template in enumerate(permission_set_templates(ps.policy_text)):
            if ps.allowed_cidrs is not None:
                template["conditions"].append(condition_of(_cidr_condition(ps.allowed_cidrs)))
            template_id = f"ps.{ps.id}.{index}"
            templates[template_id] = template
            ids.append(template_id)
        set_templates[ps.id] = ids
    for assignment in facts.assignments:
        ps = facts.permission_sets[assignment.permission_set_id]
        principal_type = "User" if assignment.principal_type == "user" else "Group"
        target_type = "Account" if assignment.target_type == "account" else "OU"
        if target_type == "Account":
            target_name = assignment.target_id
        elif (ou := facts.org.ous.get(assignment.target_id)) is not None:
            target_name = ou.path or "(root)"
        else:  # its OU is gone (deletes refuse this now): grant nothing, break nothing
            logger.warning("assignment %s targets a missing OU; ignored", assignment.id)
            continue
        for index, template_id in enumerate(set_templates[ps.id]):
            link_id = f"as.{assignment.id}.{index}"
            principal_links.append(
                {
                    "templateId": template_id,
                    "newId": link_id,
                    "values": {
                        "?principal": uid(principal_type, assignment.principal_name),
                        "?resource": uid(target_type, assignment.target_id),
                    },
                }
            )
            sources[link_id] = PolicySource(
                "permission-set",
                ps.name,
                f"assigned to {assignment.principal_type} {assignment.principal_name} "
                f"on {assignment.target_type} {target_name}",
            )
    for guardrail in facts.guardrails:
        ou_path = facts.org.ous[guardrail.ou_id].path or "(root)"
        for index, template in enumerate(guardrail_templates(guardrail.policy_text)):
            template_id = f"gr.{guardrail.id}.{index}"
            templates[template_id] = template
            link_id = f"gl.{guardrail.id}.{index}"
            links.append(
                {
                    "templateId": template_id,
                    "newId": link_id,
                    "values": {"?resource": uid("OU", guardrail.ou_id)},
                }
            )
            sources[link_id] = PolicySource("guardrail", guardrail.name, f"on OU {ou_path}")

    entity_list = _entities(facts)
    entities = cedarpy.Entities.from_json_str(json.dumps(entity_list))
    entity_json: dict[EntityKey, str] = {}
    entity_parents: dict[EntityKey, tuple[EntityKey, ...]] = {}
    for entity in entity_list:
        key = _key(entity["uid"])
        entity_json[key] = json.dumps(entity)
        entity_parents[key] = tuple(_key(p) for p in entity["parents"])
    links_by_principal: dict[EntityKey, list[dict[str, Any]]] = {}
    for link in principal_links:
        holder = _key(link["values"]["?principal"])
        links_by_principal.setdefault(holder, []).append(link)
    return CompiledPolicies(
        facts=facts,
        entities=entities,
        known=frozenset(entity_json),
        sources=sources,
        org_admins=_org_admins(facts),
        static=static,
        templates=templates,
        shared_links=links,
        links_by_principal=links_by_principal,
        entity_json=entity_json,
        entity_parents=entity_parents,
        template_actions={
            template_id: action_scope(template) for template_id, template in templates.items()
        },
    )


def _admits(scope: frozenset[str] | None, action: Action) -> bool:
    return scope is None or action.value in scope


def _key(entity_uid: dict[str, str]) -> EntityKey:
    return (entity_uid["type"].removeprefix(f"{NAMESPACE}::"), entity_uid["id"])


def _org_admins(facts: AccessFacts) -> frozenset[str]:
    admins: set[str] = set()
    for assignment in facts.assignments:
        if (
            facts.permission_sets[assignment.permission_set_id].name == ORG_ADMIN_SET
            and assignment.target_type == "ou"
            and assignment.target_id == facts.org.root_ou_id
        ):
            if assignment.principal_type == "user":
                admins.add(assignment.principal_name)
            else:
                admins |= {
                    user
                    for user, groups in facts.user_groups.items()
                    if assignment.principal_name in groups
                }
    return frozenset(admins)
