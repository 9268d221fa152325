"""Resolvers: how each route finds the resource it authorises, from stored state.

A resolver turns a request's path (and, for creates, the body's placement fields) into
a :class:`~ketch.api.deps.Target`: the Cedar entity, its stored container and owning
account. For an existing resource the owner always comes from the store; a create is
checked on the nearest existing container of where it will be placed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ketch import iam
from ketch.api.deps import Resolution, Resolver, Target
from ketch.core.artifact_uri import ArtifactUri, validate_key
from ketch.core.errors import NotFound
from ketch.core.instances import DEFAULT_INSTANCE_TYPE
from ketch.core.krn import krn
from ketch.iam import (
    CompiledPolicies,
    ResourceRef,
    assignment_resource,
    guardrail_governs,
    is_caller_or_own_group,
    move_escapes_guardrails,
    ou_id_of,
)
from ketch.org import OrgSnapshot


def _nearest_ou(snapshot: OrgSnapshot, path: str) -> str:
    """The id of the OU at ``path`` or of its nearest existing ancestor."""
    names = [n for n in path.strip("/").split("/") if n]
    while names:
        found = snapshot.ou_ids_by_path.get("/".join(names))
        if found is not None:
            return found
        names.pop()
    return snapshot.root_ou_id


def _body_str(body: Any, key: str, default: str = "") -> str:
    value = body.get(key, default) if isinstance(body, dict) else default
    return value if isinstance(value, str) else default


def _body_optional_str(body: Any, key: str) -> str | None:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def organization() -> Resolver:
    def resolve(r: Resolution) -> Target:
        org = r.compiled.facts.org
        return Target(
            ResourceRef("Organization", org.organization_id),
            krn=krn("", "organization", org.organization_name),
        )

    return resolve


def ou_from_path(param: str = "ou_id") -> Resolver:
    def resolve(r: Resolution) -> Target:
        ou_id = r.path[param]
        ou = r.compiled.facts.org.ous.get(ou_id)
        if ou is None:
            raise NotFound(f"OU '{ou_id}' does not exist")
        return Target(ResourceRef("OU", ou.id), krn=krn("", "ou", ou.path or "root"))

    return resolve


def ou_change_from_path(param: str = "ou_id") -> Resolver:
    """The OU a PATCH changes. Moving it (``parent``) must not take what it holds out from
    under a guardrail above it that governs the caller (see :func:`account_change_from_path`)."""
    base = ou_from_path(param)

    def resolve(r: Resolution) -> Target:
        target = base(r)
        parent = _body_optional_str(r.body, "parent")
        ou = r.compiled.facts.org.ous[r.path[param]]
        if parent is None or ou.parent_id is None:
            return target
        escapes = move_escapes_guardrails(
            r.compiled, r.caller, ou.parent_id, _nearest_ou(r.compiled.facts.org, parent)
        )
        return replace(target, guardrail_governs_caller=escapes)

    return resolve


def ou_destination(compiled: CompiledPolicies, parent_path: str) -> Target:
    """A new OU under ``parent_path``: where a move puts an OU."""
    parent = _nearest_ou(compiled.facts.org, parent_path)
    return Target(
        ResourceRef("OU", f"new:{parent_path}", "OU", parent),
        krn=krn("", "ou", parent_path.strip("/") or "root"),
    )


def new_ou_from_body() -> Resolver:
    def resolve(r: Resolution) -> Target:
        snapshot = r.compiled.facts.org
        parent = _body_str(r.body, "parent")
        name = _body_str(r.body, "name", "new")
        path = f"{parent.strip('/')}/{name}".strip("/")
        return Target(
            ResourceRef("OU", f"new:{path}", "OU", _nearest_ou(snapshot, parent)),
            krn=krn("", "ou", path or "root"),
        )

    return resolve


def account_from_path(param: str = "account_id") -> Resolver:
    def resolve(r: Resolution) -> Target:
        account_id = r.path[param]
        message = f"account '{account_id}' does not exist"
        if account_id not in r.compiled.facts.org.accounts:
            raise NotFound(message)
        return Target(
            ResourceRef("Account", account_id),
            account=account_id,
            krn=krn("", "account", account_id),
            hidden_as_missing=True,
        )

    return resolve


def account_change_from_path(param: str = "account_id") -> Resolver:
    """The account a PATCH changes. Moving it (``ou``) or changing its ``stage`` must not
    take it out from under a guardrail that governs the caller: such a change is marked
    ``guardrail_governs_caller`` (``system.no-own-guardrail-edits`` forbids it)."""
    base = account_from_path(param)

    def resolve(r: Resolution) -> Target:
        target = base(r)
        account = r.compiled.facts.org.accounts[r.path[param]]
        destination = _body_optional_str(r.body, "ou")
        stage = _body_str(r.body, "stage", account.stage)
        moves, restages = destination is not None, stage != account.stage
        if not (moves or restages):
            return target
        escapes = move_escapes_guardrails(
            r.compiled,
            r.caller,
            account.ou_id,
            _nearest_ou(r.compiled.facts.org, destination) if destination is not None else None,
            restages=restages,
        )
        return replace(target, guardrail_governs_caller=escapes)

    return resolve


def account_destination(compiled: CompiledPolicies, account_id: str, ou_path: str) -> Target:
    """An account as if created at ``ou_path``: where a move puts it."""
    return Target(
        ResourceRef("Account", f"new:{account_id}", "OU", _nearest_ou(compiled.facts.org, ou_path)),
        account=None,
        krn=krn("", "ou", ou_path.strip("/") or "root"),
    )


def new_account_from_body() -> Resolver:
    def resolve(r: Resolution) -> Target:
        snapshot = r.compiled.facts.org
        account_id = _body_str(r.body, "id", "new")
        parent = _nearest_ou(snapshot, _body_str(r.body, "ou"))
        return Target(
            ResourceRef("Account", f"new:{account_id}", "OU", parent),
            krn=krn("", "account", account_id),
            audit_account=account_id if account_id != "new" else None,
        )

    return resolve


def caller_self() -> Resolver:
    def resolve(r: Resolution) -> Target:
        return Target(ResourceRef("User", r.caller.name), krn=krn("", "user", r.caller.name))

    return resolve


# -- identity and access (organisation-level resources in the root OU) ---------------


def _in_root(r: Resolution, entity_type: str, entity_id: str) -> ResourceRef:
    return ResourceRef(entity_type, entity_id, "OU", r.compiled.facts.org.root_ou_id)


def named(entity_type: str, krn_type: str, param: str = "name") -> Resolver:
    """A user, group or permission set named in the path."""

    def resolve(r: Resolution) -> Target:
        name = r.path[param]
        return Target(_in_root(r, entity_type, name), krn=krn("", krn_type, name))

    return resolve


def new_named(entity_type: str, krn_type: str) -> Resolver:
    """A user, group or permission set about to be created (``name`` in the body)."""

    def resolve(r: Resolution) -> Target:
        name = _body_str(r.body, "name", "new")
        return Target(_in_root(r, entity_type, f"new:{name}"), krn=krn("", krn_type, name))

    return resolve


def new_group_member(param: str = "name") -> Resolver:
    """A group gaining the member named in the body: the caller adding itself escalates."""

    def resolve(r: Resolution) -> Target:
        group = r.path[param]
        user = _body_str(r.body, "user")
        return Target(
            _in_root(r, "Group", group),
            krn=krn("", "group", group),
            subject_is_caller=is_caller_or_own_group(r.compiled, r.caller, "user", user),
        )

    return resolve


def token_owner_from_query() -> Resolver:
    """The user whose tokens are listed: ``?user=``, else the caller."""

    def resolve(r: Resolution) -> Target:
        user = r.query.get("user") or r.caller.name
        return Target(_in_root(r, "User", user), krn=krn("", "user", user))

    return resolve


def token_from_path(param: str = "token_id") -> Resolver:
    """A token, authorised as its stored owner (``RevokeToken`` acts on the owner)."""

    def resolve(r: Resolution) -> Target:
        owner = iam.token_owner(r.uow, r.path[param])
        return Target(_in_root(r, "User", owner), krn=krn("", "user", owner))

    return resolve


def assignment_target(
    compiled: CompiledPolicies, entity_id: str, target_type: str, target: str
) -> Target:
    """An assignment lives in what it targets: an account, or an OU (by path)."""
    resource, account = assignment_resource(compiled, entity_id, target_type, target)
    return Target(
        resource,
        account=account,
        krn=krn("", "assignment", entity_id.removeprefix("new:")),
        hidden_as_missing=account is not None,
    )


def new_assignment_from_body() -> Resolver:
    """An assignment about to be made; giving it to oneself (or one's group) escalates."""

    def resolve(r: Resolution) -> Target:
        target_type = _body_str(r.body, "target_type")
        if target_type not in {"account", "ou"}:
            # Malformed body: decide on the root; validation then answers 400.
            return Target(_in_root(r, "Assignment", "new"))
        target = assignment_target(
            r.compiled, "new:assignment", target_type, _body_str(r.body, "target")
        )
        principal_type = _body_str(r.body, "principal_type")
        principal = _body_str(r.body, "principal")
        escalates = is_caller_or_own_group(r.compiled, r.caller, principal_type, principal)
        return replace(target, subject_is_caller=escalates)

    return resolve


def assignment_from_path(param: str = "assignment_id") -> Resolver:
    def resolve(r: Resolution) -> Target:
        assignment = iam.get_assignment(r.uow, r.path[param])
        return assignment_target(
            r.compiled, assignment.id, assignment.target_type, assignment.target
        )

    return resolve


def _guardrail_target(r: Resolution, entity_id: str, name: str, ou_id: str) -> Target:
    return Target(
        ResourceRef("Guardrail", entity_id, "OU", ou_id),
        krn=krn("", "guardrail", name),
        guardrail_governs_caller=guardrail_governs(r.compiled, r.caller, ou_id),
    )


def new_guardrail_from_body() -> Resolver:
    """A guardrail about to be attached to an OU (``ou`` in the body; ``""`` is the root)."""

    def resolve(r: Resolution) -> Target:
        name = _body_str(r.body, "name", "new")
        ou_id = ou_id_of(r.compiled, _body_str(r.body, "ou"))
        return _guardrail_target(r, f"new:{name}", name, ou_id)

    return resolve


def guardrail_from_path(param: str = "name") -> Resolver:
    def resolve(r: Resolution) -> Target:
        name = r.path[param]
        attached = {g.name: g.ou_id for g in r.compiled.facts.guardrails}
        if name not in attached:
            raise NotFound(f"guardrail '{name}' does not exist")
        return _guardrail_target(r, name, name, attached[name])

    return resolve


def artifact_from_path(account_param: str = "account_id", key_param: str = "key") -> Resolver:
    """An object in an account's artifact store (``ketch://<account>/<key>``)."""

    def resolve(r: Resolution) -> Target:
        account_id = r.path[account_param]
        key = validate_key(r.path[key_param])
        if account_id not in r.compiled.facts.org.accounts:
            raise NotFound(f"account '{account_id}' does not exist")
        uri = ArtifactUri(account_id, key)
        return Target(
            ResourceRef("Artifact", str(uri), "Account", account_id),
            account=account_id,
            krn=f"krn:ketch:{account_id}:artifact/{key}",
            hidden_as_missing=True,
        )

    return resolve


def artifacts_in_account(account_param: str = "account_id") -> Resolver:
    """All objects of an account's artifact store (a listing)."""

    def resolve(r: Resolution) -> Target:
        account_id = r.path[account_param]
        message = f"account '{account_id}' does not exist"
        if account_id not in r.compiled.facts.org.accounts:
            raise NotFound(message)
        return Target(
            ResourceRef("Artifact", str(ArtifactUri(account_id, "")), "Account", account_id),
            account=account_id,
            krn=f"krn:ketch:{account_id}:artifact/",
            hidden_as_missing=True,
        )

    return resolve


def _job_target(r: Resolution, entity_type: str, krn_type: str, name: str) -> Target:
    account_id = r.path["account_id"]
    if account_id not in r.compiled.facts.org.accounts:
        raise NotFound(f"account '{account_id}' does not exist")
    name_krn = f"krn:ketch:{account_id}:{krn_type}/{name}"
    return Target(
        ResourceRef(entity_type, name_krn, "Account", account_id),
        account=account_id,
        krn=name_krn,
        hidden_as_missing=True,
    )


def job_from_path(entity_type: str, krn_type: str) -> Resolver:
    """A job of an account, named in the path (``/accounts/{account_id}/...-jobs/{name}``)."""

    def resolve(r: Resolution) -> Target:
        return _job_target(r, entity_type, krn_type, r.path["name"])

    return resolve


def new_job_from_body(entity_type: str, krn_type: str) -> Resolver:
    """A job being submitted: its name and instance type come from the body (the instance
    type enters the Cedar context, for guardrails on sizes)."""

    def resolve(r: Resolution) -> Target:
        target = _job_target(r, entity_type, krn_type, _body_str(r.body, "name", "new"))
        return replace(
            target, instance_type=_body_str(r.body, "instance_type", DEFAULT_INSTANCE_TYPE)
        )

    return resolve


def jobs_in_account(entity_type: str, krn_type: str) -> Resolver:
    """An account's jobs of one kind (a listing)."""

    def resolve(r: Resolution) -> Target:
        return _job_target(r, entity_type, krn_type, "*")

    return resolve
