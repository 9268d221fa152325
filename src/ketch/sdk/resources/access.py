"""``client.permission_sets``, ``client.assignments``, ``client.guardrails``,
``client.network_policy`` and ``client.iam`` (the policy simulator).

Policy text is Cedar. The server checks it against ketch's schema and answers
:class:`~ketch.core.errors.InvalidInput` with Cedar's own message; the SDK only checks
the shape of a request (lengths, which fields go together) before sending it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ketch.core.errors import InvalidInput
from ketch.schemas.common import Page
from ketch.schemas.iam import (
    Assignment,
    AssignmentCreate,
    Guardrail,
    GuardrailCreate,
    GuardrailExample,
    GuardrailUpdate,
    NetworkPolicy,
    NetworkPolicyUpdate,
    PermissionSet,
    PermissionSetCreate,
    PermissionSetUpdate,
    SimulationRequest,
    SimulationResult,
)
from ketch.sdk._pagination import iterate
from ketch.sdk._wire import build, segment

if TYPE_CHECKING:
    from ketch.sdk.client import Client

PREFIX = "/api/v1"

Cidrs = list[str]
"""Address ranges in CIDR notation (an alias: ``list`` is also a method name below)."""


class PermissionSets:
    """Cedar ``permit`` templates (``principal in ?principal``, ``resource in ?resource``).

    Built-in sets (``builtin=True``) can be read and assigned but not changed or deleted.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        name: str,
        *,
        policy_text: str,
        description: str = "",
        allowed_cidrs: Cidrs | None = None,
    ) -> PermissionSet:
        """``allowed_cidrs`` limits the set to requests from those ranges (``None``: any)."""
        body = build(
            PermissionSetCreate,
            name=name,
            policy_text=policy_text,
            description=description,
            allowed_cidrs=allowed_cidrs,
        )
        response = self._client.request(
            "POST", f"{PREFIX}/permission-sets", json=body.model_dump(exclude_none=True)
        )
        return PermissionSet.model_validate(response.json())

    def get(self, name: str) -> PermissionSet:
        path = f"{PREFIX}/permission-sets/{segment(name, field='name')}"
        return PermissionSet.model_validate(self._client.request("GET", path).json())

    def list(
        self, *, max_results: int | None = None, next_token: str | None = None
    ) -> Page[PermissionSet]:
        params = {"max_results": max_results, "next_token": next_token}
        response = self._client.request("GET", f"{PREFIX}/permission-sets", params=params)
        return Page[PermissionSet].model_validate(response.json())

    def iter_all(self, *, page_size: int | None = None) -> Iterator[PermissionSet]:
        """Every permission set, built-in ones included, by name."""
        return iterate(lambda token: self.list(max_results=page_size, next_token=token))

    def update(
        self,
        name: str,
        *,
        policy_text: str | None = None,
        description: str | None = None,
        allowed_cidrs: Cidrs | None = None,
        clear_allowed_cidrs: bool = False,
    ) -> PermissionSet:
        """Change what is given; ``clear_allowed_cidrs`` lifts the address limit."""
        if clear_allowed_cidrs and allowed_cidrs is not None:
            raise InvalidInput("give allowed_cidrs or clear_allowed_cidrs, not both")
        fields: dict[str, Any] = {
            key: value
            for key, value in (
                ("policy_text", policy_text),
                ("description", description),
                ("allowed_cidrs", allowed_cidrs),
            )
            if value is not None
        }
        if clear_allowed_cidrs:
            fields["allowed_cidrs"] = None  # sent as an explicit null: "no limit"
        body = build(PermissionSetUpdate, **fields).model_dump(exclude_unset=True)
        path = f"{PREFIX}/permission-sets/{segment(name, field='name')}"
        return PermissionSet.model_validate(self._client.request("PATCH", path, json=body).json())

    def delete(self, name: str) -> None:
        """Delete a custom set that is no longer assigned."""
        self._client.request("DELETE", f"{PREFIX}/permission-sets/{segment(name, field='name')}")


class Assignments:
    """Links of a permission set to a user or group on an account or an OU (and below)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        permission_set: str,
        principal_type: str,
        principal: str,
        target_type: str,
        target: str,
    ) -> Assignment:
        """``principal_type`` is ``user`` or ``group``; ``target_type`` is ``account`` (an
        account id) or ``ou`` (an OU path, ``""`` for the root)."""
        body = build(
            AssignmentCreate,
            permission_set=permission_set,
            principal_type=principal_type,
            principal=principal,
            target_type=target_type,
            target=target,
        )
        response = self._client.request("POST", f"{PREFIX}/assignments", json=body.model_dump())
        return Assignment.model_validate(response.json())

    def get(self, assignment_id: str) -> Assignment:
        path = f"{PREFIX}/assignments/{segment(assignment_id, field='assignment_id')}"
        return Assignment.model_validate(self._client.request("GET", path).json())

    def list(
        self,
        *,
        principal_type: str | None = None,
        principal: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[Assignment]:
        """All assignments, or those made directly to one principal (give both filters)."""
        if (principal_type is None) != (principal is None):
            raise InvalidInput("give principal_type and principal together")
        params = {
            "principal_type": principal_type,
            "principal": principal,
            "max_results": max_results,
            "next_token": next_token,
        }
        response = self._client.request("GET", f"{PREFIX}/assignments", params=params)
        return Page[Assignment].model_validate(response.json())

    def iter_all(
        self,
        *,
        principal_type: str | None = None,
        principal: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Assignment]:
        return iterate(
            lambda token: self.list(
                principal_type=principal_type,
                principal=principal,
                max_results=page_size,
                next_token=token,
            )
        )

    def delete(self, assignment_id: str) -> None:
        path = f"{PREFIX}/assignments/{segment(assignment_id, field='assignment_id')}"
        self._client.request("DELETE", path)


class Guardrails:
    """Cedar ``forbid`` templates attached to an OU; they win over any assignment below it."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        name: str,
        *,
        policy_text: str | None = None,
        example: str | None = None,
        ou: str = "",
        description: str = "",
    ) -> Guardrail:
        """From ``policy_text`` or from a shipped ``example`` (see :meth:`examples`): one
        of the two. ``ou`` is the OU path it holds in (``""``: the whole organisation)."""
        body = build(
            GuardrailCreate,
            name=name,
            policy_text=policy_text,
            example=example,
            ou=ou,
            description=description,
        )
        response = self._client.request(
            "POST", f"{PREFIX}/guardrails", json=body.model_dump(exclude_none=True)
        )
        return Guardrail.model_validate(response.json())

    def examples(self) -> list[GuardrailExample]:
        """The guardrails that ship with ketch, usable as ``create(name, example=...)``."""
        response = self._client.request("GET", f"{PREFIX}/guardrail-examples")
        return [GuardrailExample.model_validate(item) for item in response.json()]

    def get(self, name: str) -> Guardrail:
        path = f"{PREFIX}/guardrails/{segment(name, field='name')}"
        return Guardrail.model_validate(self._client.request("GET", path).json())

    def list(
        self, *, max_results: int | None = None, next_token: str | None = None
    ) -> Page[Guardrail]:
        params = {"max_results": max_results, "next_token": next_token}
        response = self._client.request("GET", f"{PREFIX}/guardrails", params=params)
        return Page[Guardrail].model_validate(response.json())

    def iter_all(self, *, page_size: int | None = None) -> Iterator[Guardrail]:
        return iterate(lambda token: self.list(max_results=page_size, next_token=token))

    def update(
        self, name: str, *, policy_text: str | None = None, description: str | None = None
    ) -> Guardrail:
        body = build(GuardrailUpdate, policy_text=policy_text, description=description)
        response = self._client.request(
            "PATCH",
            f"{PREFIX}/guardrails/{segment(name, field='name')}",
            json=body.model_dump(exclude_none=True),
        )
        return Guardrail.model_validate(response.json())

    def delete(self, name: str) -> None:
        self._client.request("DELETE", f"{PREFIX}/guardrails/{segment(name, field='name')}")


class NetworkPolicyResource:
    """The organisation-wide allow-list of source address ranges (``None``: any address).

    A request from outside the list is denied whatever the caller's permissions, so
    keep your own address in it.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self) -> NetworkPolicy:
        response = self._client.request("GET", f"{PREFIX}/network-policy")
        return NetworkPolicy.model_validate(response.json())

    def set(self, allowed_cidrs: Cidrs | None) -> NetworkPolicy:
        """Replace the allow-list (CIDR notation, e.g. ``10.8.0.0/16``); ``None`` lifts it."""
        body = build(NetworkPolicyUpdate, allowed_cidrs=allowed_cidrs).model_dump()
        response = self._client.request("PUT", f"{PREFIX}/network-policy", json=body)
        return NetworkPolicy.model_validate(response.json())

    def clear(self) -> NetworkPolicy:
        """Allow requests from any address again."""
        return self.set(None)


class Iam:
    """Questions about the policies as a whole: ``client.iam.simulate(...)``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def simulate(
        self,
        *,
        principal: str,
        action: str,
        resource: str,
        source_ip: str = "127.0.0.1",
        instance_type: str | None = None,
    ) -> SimulationResult:
        """Would ``principal`` be allowed ``action`` on ``resource`` (a KRN) right now?

        Nothing is performed. The result names the policies that decided (the permits
        that allowed, or the forbids and guardrails that denied) and explains a default
        deny. A Deny is an answer, not an error: only bad input raises.
        """
        body = build(
            SimulationRequest,
            principal=principal,
            action=action,
            resource=resource,
            source_ip=source_ip,
            instance_type=instance_type,
        )
        response = self._client.request(
            "POST", f"{PREFIX}/iam/simulate", json=body.model_dump(exclude_none=True)
        )
        return SimulationResult.model_validate(response.json())
