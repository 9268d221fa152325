"""The Cedar decision engine: compile the organisation's policies once, decide fast.

``compile_policies`` turns one :class:`AccessFacts` (everything that can change a
decision, read at one policy epoch) into pre-parsed ``Entities`` and the policies in
Cedar's JSON format. Permission sets and guardrails are templates; assignments and
guardrail attachments are template links.

Cedar evaluates every policy of a set on every request, so a decision would cost time
in proportion to the whole organisation's assignments. Instead a request is decided on
a pre-parsed ``PolicySet`` built for its principal and the resource's path to the root
(once per epoch, then cached): the system policies, the network guard, and only the
links that can match, those naming the principal or one of its groups and linked to an
entity on that path (every template is scoped ``resource in ?resource``). A resource the entities do
not hold (a job being created, say) is decided on a small entity slice: the principal
and its groups, the resource and its ancestors, the action and its groups; copying the
whole entity set per request would cost milliseconds.

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
from ketch.iam.builtin import ORG_ADMIN_SET, SYSTEM_POLICIES
from ketch.iam.cedar_schema import ACTION_GROUPS, NAMESPACE
from ketch.iam.policy_text import condition_of, guardrail_templates, permission_set_templates
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


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()


def uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{entity_type}", "id": entity_id}


def ip_value(address: str) -> dict[str, Any]:
    return {"__extn": {"fn": "ip", "arg": address}}


EntityKey = tuple[str, str]
"""(entity type without namespace, entity id)."""

LINK_TARGET_TYPES = frozenset({"Account", "OU"})
"""What assignments and guardrails are linked to (``?resource``)."""
MAX_CACHED_POLICY_SETS = 50_000
"""Policy sets (principal, resource path) kept per epoch; emptied when full."""
MAX_CACHED_SLICES = 20_000
"""Entity slices (principal, action, container) kept per epoch; emptied when full."""


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
    _policy_sets: dict[tuple[str, frozenset[EntityKey] | None], cedarpy.PolicySet] = field(
        default_factory=dict
    )
    _slices: dict[tuple[str, str, str, str], cedarpy.Entities] = field(default_factory=dict)

    @property
    def version(self) -> tuple[int, int]:
        return self.facts.version

    def policy_set_for(
        self, principal: str, resource: ResourceRef | None = None
    ) -> cedarpy.PolicySet:
        """Every policy that can apply to ``principal`` acting on ``resource``.

        Every template is scoped ``resource in ?resource``, so a link can only match a
        resource below (or at) the entity it links: links to anything off the
        resource's path to the root are left out. ``None`` keeps all of the principal's.
        Parsed once per epoch for each (principal, path) and cached.
        """
        path = self._path_of(resource) if resource is not None else None
        key = (principal, path)
        cached = self._policy_sets.get(key)
        if cached is not None:
            return cached
        links = list(self.shared_links)
        for holder in (
            ("User", principal),
            *(("Group", g) for g in self.facts.user_groups.get(principal, ())),
        ):
            links += self.links_by_principal.get(holder, ())
        if path is not None:
            links = [link for link in links if _key(link["values"]["?resource"]) in path]
        document = {
            "staticPolicies": self.static,
            "templates": self.templates,
            "templateLinks": links,
        }
        policy_set = cedarpy.PolicySet.from_json_str(json.dumps(document))
        if len(self._policy_sets) >= MAX_CACHED_POLICY_SETS:
            self._policy_sets.clear()
        self._policy_sets[key] = policy_set  # a race only builds it twice
        return policy_set

    def _path_of(self, resource: ResourceRef) -> frozenset[EntityKey]:
        """The accounts and OUs the resource is, or is (transitively) in: what links name.

        Only those, so that requests on different resources in one account share a set.
        """
        start: EntityKey = (resource.type, resource.id)
        pending = [start, *self.entity_parents.get(start, ())]
        if resource.parent_type and resource.parent_id:
            pending.append((resource.parent_type, resource.parent_id))
        seen: set[EntityKey] = set()
        while pending:
            key = pending.pop()
            if key not in seen:
                seen.add(key)
                pending += self.entity_parents.get(key, ())
        return frozenset(key for key in seen if key[0] in LINK_TARGET_TYPES)

    def decide(
        self, *, principal: str, action: Action, resource: ResourceRef, context: dict[str, Any]
    ) -> Decision:
        entities = self.entities
        if (resource.type, resource.id) not in self.known:
            entities = self.entity_slice(principal, action, resource)
        request = {
            "principal": uid("User", principal),
            "action": uid("Action", action.value),
            "resource": uid(resource.type, resource.id),
            # Serialised here, compactly: cedarpy would copy the request and dump it itself.
            "context": json.dumps(context, separators=(",", ":")),
        }
        result = cedarpy.is_authorized(request, self.policy_set_for(principal, resource), entities)
        errors = tuple(str(e) for e in result.diagnostics.errors)
        reasons = tuple(result.diagnostics.reasons)
        if errors:
            # A forbid that errors is skipped by Cedar; for a guardrail that would fail open.
            logger.warning(
                "authorisation error for %s on %s: %s", action.value, resource.id, errors
            )
            return Decision(allowed=False, policy_ids=reasons, errors=errors)
        return Decision(allowed=result.allowed, policy_ids=reasons)

    def entity_slice(
        self, principal: str, action: Action, resource: ResourceRef
    ) -> cedarpy.Entities:
        """The entities a request on a resource unknown to the set can depend on.

        The slice around the resource (principal, groups, action, the resource's
        ancestors) is parsed once per epoch and kept; the resource is added to a copy.
        """
        key = (principal, action.value, resource.parent_type or "", resource.parent_id or "")
        around = self._slices.get(key)
        if around is None:
            around = self._parse_slice(principal, action, resource)
            if len(self._slices) >= MAX_CACHED_SLICES:
                self._slices.clear()
            self._slices[key] = around
        return around.with_added_json_str("[" + json.dumps(_resource_entity(resource)) + "]")

    def _parse_slice(
        self, principal: str, action: Action, resource: ResourceRef
    ) -> cedarpy.Entities:
        parts: list[str] = []
        seen: set[EntityKey] = set()
        pending: list[EntityKey] = [("User", principal), ("Action", action.value)]
        if resource.parent_type and resource.parent_id:
            pending.append((resource.parent_type, resource.parent_id))
        while pending:
            key = pending.pop()
            if key in seen or key not in self.entity_json:
                continue
            seen.add(key)
            parts.append(self.entity_json[key])
            pending += self.entity_parents[key]
        return cedarpy.Entities.from_json_str("[" + ",".join(parts) + "]")


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
    for policy_id, text in SYSTEM_POLICIES.items():
        parsed = json.loads(cedarpy.policies_to_json_str(text))
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
        target_name = (
            assignment.target_id
            if target_type == "Account"
            else (facts.org.ous[assignment.target_id].path or "(root)")
        )
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
    )


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
