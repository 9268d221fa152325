"""Resolvers: how each route finds the resource it authorises, from stored state.

A resolver turns a request's path (and, for creates, the body's placement fields) into
a :class:`~ketch.api.deps.Target`: the Cedar entity, its stored container and owning
account. For an existing resource the owner always comes from the store; a create is
checked on the nearest existing container of where it will be placed.
"""

from __future__ import annotations

from typing import Any

from ketch.api.deps import Resolution, Resolver, Target
from ketch.core.errors import NotFound
from ketch.core.krn import krn
from ketch.iam import ResourceRef
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
            not_found=message,
        )

    return resolve


def new_account_from_body() -> Resolver:
    def resolve(r: Resolution) -> Target:
        snapshot = r.compiled.facts.org
        account_id = _body_str(r.body, "id", "new")
        parent = _nearest_ou(snapshot, _body_str(r.body, "ou"))
        return Target(
            ResourceRef("Account", f"new:{account_id}", "OU", parent),
            krn=krn("", "account", account_id),
        )

    return resolve


def caller_self() -> Resolver:
    def resolve(r: Resolution) -> Target:
        return Target(ResourceRef("User", r.caller.name), krn=krn("", "user", r.caller.name))

    return resolve
