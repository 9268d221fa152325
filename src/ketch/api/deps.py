"""Request dependencies: the context, the caller, authorisation and audited writes.

Every route depends on exactly one of :func:`authorize` (with its action and how its
resource is found) or :func:`public`; ``tests/test_architecture.py`` walks the route
table to prove it. Authorisation runs before the handler, on the resource's *stored*
owner (resolvers look it up; a body field never names the account that is checked).
A denial is audited in its own transaction and answers 403, or 404 when the caller may
not even see the account the resource lives in, exactly as if it did not exist.
Mutating handlers open their unit of work with :meth:`Guard.write`, which records the
audit entry in the same transaction as the change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ketch import audit, iam
from ketch.core.errors import Forbidden, KetchError, NotFound, Unauthenticated
from ketch.core.logging import principal_var
from ketch.core.settings import KetchSettings
from ketch.iam import ACTION_SPECS, Action, Authorizer, Caller, CompiledPolicies, RequestFacts
from ketch.iam import ResourceRef as ResourceRef
from ketch.store.session import UnitOfWork, UnitOfWorkFactory

ACTION_ATTRIBUTE = "__ketch_action__"
PUBLIC_ATTRIBUTE = "__ketch_public__"

_bearer = HTTPBearer(auto_error=False, description="An API token from `ketch login`.")

POLICY_TYPES = frozenset(
    {"OU", "Account", "User", "Group", "PermissionSet", "Assignment", "Guardrail", "Organization"}
)
"""Resource types whose changes can alter decisions: writing them bumps the policy epoch."""


class AppContext(Protocol):
    """What the API needs from the composition root (``ketch.server.context.Context``)."""

    settings: KetchSettings
    uow: UnitOfWorkFactory
    authorizer: Authorizer


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved resource: its Cedar entity, stored owner account and KRN."""

    resource: ResourceRef
    account: str | None = None
    krn: str | None = None
    hide_if_denied: bool = False
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a resolver may look at: path parameters, the JSON body, the caller, state."""

    uow: UnitOfWork
    compiled: CompiledPolicies
    caller: Caller
    path: dict[str, str]
    body: Any


Resolver = Callable[[Resolution], Target]


def client_address(request: Request, trusted_proxies: list[str]) -> str:
    """The client's address: the socket peer, or ``X-Forwarded-For`` behind trusted proxies.

    Walks the forwarded chain from the right and stops at the first address that is
    not a trusted proxy, so a client cannot spoof its address by sending the header.
    """
    peer = request.client.host if request.client else "0.0.0.0"  # noqa: S104
    networks = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in n for n in networks)

    if not networks or not trusted(peer):
        return peer
    forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a]
    for address in reversed(forwarded):
        if not trusted(address):
            return address
    return peer


@dataclass
class Guard:
    """The outcome of authorisation, handed to the handler."""

    context: AppContext
    caller: Caller
    action: Action
    target: Target
    request_facts: RequestFacts
    request_id: str | None
    user_agent: str | None
    policy_ids: tuple[str, ...] = ()
    filtered: bool = False

    def entry(self, outcome: audit.Outcome, error_code: str | None = None) -> audit.AuditEntry:
        return audit.AuditEntry(
            principal=self.caller.name,
            principal_id=self.caller.user_id,
            account=self.target.account,
            action=self.action.value,
            resource=self.target.krn,
            request_id=self.request_id,
            source_ip=self.request_facts.source_ip,
            user_agent=self.user_agent,
            outcome=outcome,
            error_code=error_code,
            policy_ids=self.policy_ids,
        )

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        """A write unit of work whose audit record commits (or rolls back) with the change."""
        try:
            with self.context.uow(write=True) as uow:
                yield uow
                if self.action in _POLICY_ACTIONS:
                    iam.bump_policy_epoch(uow)
                audit.record_event(uow, self.entry(audit.Outcome.SUCCESS))
        except KetchError as exc:
            self._record_failure(exc.code.value)
            raise
        except Exception:
            self._record_failure("InternalError")
            raise

    def _record_failure(self, code: str) -> None:
        with self.context.uow(write=True) as uow:
            audit.record_event(uow, self.entry(audit.Outcome.FAILED, code))

    def can(self, uow: UnitOfWork, action: Action, target: Target) -> bool:
        """Whether the caller may ``action`` on ``target`` (for filtering lists)."""
        decision = self.context.authorizer.check(
            uow,
            self.caller,
            action,
            target.resource,
            account=target.account,
            facts=self.request_facts,
        )
        return decision.allowed


_POLICY_ACTIONS = frozenset(
    a
    for a, spec in ACTION_SPECS.items()
    if spec.resource_type in POLICY_TYPES and not spec.read_only
)


def _authenticate(
    context: ContextDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if "access_token" in request.query_params or "token" in request.query_params:
        raise Unauthenticated("tokens are accepted only in the Authorization header")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token; sign in with `ketch login`")
    with context.uow() as uow:
        caller = iam.authenticate(uow, credentials.credentials)
    if caller.token_use_stale and caller.token_id:
        with context.uow(write=True) as uow:
            iam.touch_token(uow, caller.token_id)
    principal_var.set(caller.name)
    return caller


def _not_found_message(target: Target) -> str:
    return str(target.facts.get("not_found", "the resource does not exist"))


def authorize(
    action: Action,
    resource: Resolver,
    *,
    list_filter: bool = False,
) -> Callable[..., Awaitable[Guard]]:
    """A dependency that authenticates, resolves the resource and checks ``action`` first.

    ``list_filter=True`` (list routes): a denial on the container does not fail the
    request; the guard is marked ``filtered`` and the handler keeps only the items the
    caller may describe.
    """

    async def dependency(
        request: Request,
        context: ContextDep,
        caller: Annotated[Caller, Depends(_authenticate)],
    ) -> Guard:
        body = None
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                body = None  # FastAPI answers the malformed body with 400 itself
        facts = RequestFacts(
            source_ip=client_address(request, context.settings.server.trusted_proxies)
        )
        with context.uow() as uow:
            compiled = context.authorizer.compiled(uow)
            target = resource(Resolution(uow, compiled, caller, dict(request.path_params), body))
            facts = RequestFacts(
                source_ip=facts.source_ip,
                subject_is_caller=bool(target.facts.get("subject_is_caller")),
                guardrail_governs_caller=bool(target.facts.get("guardrail_governs_caller")),
                instance_type=target.facts.get("instance_type"),
            )
            decision = context.authorizer.check(
                uow, caller, action, target.resource, account=target.account, facts=facts
            )
            hidden = False
            if not decision.allowed and target.hide_if_denied and target.account:
                hidden = not context.authorizer.check(
                    uow,
                    caller,
                    Action.DESCRIBE_ACCOUNT,
                    ResourceRef("Account", target.account),
                    account=target.account,
                    facts=facts,
                ).allowed
        guard = Guard(
            context=context,
            caller=caller,
            action=action,
            target=target,
            request_facts=facts,
            request_id=getattr(request.state, "request_id", None),
            user_agent=request.headers.get("user-agent", "")[:256] or None,
            policy_ids=decision.policy_ids,
        )
        if decision.allowed:
            return guard
        if list_filter:
            guard.filtered = True
            return guard
        error: KetchError = (
            NotFound(_not_found_message(target))
            if hidden
            else Forbidden(
                f"{caller.name} is not allowed to perform {action.value} on this resource"
            )
        )
        with context.uow(write=True) as uow:
            audit.record_event(uow, guard.entry(audit.Outcome.DENIED, error.code.value))
        raise error

    setattr(dependency, ACTION_ATTRIBUTE, action)
    dependency.__name__ = f"authorize_{action.value}"
    return dependency


def public() -> None:
    """Marks a route that needs no credentials (health, sign-in, the OpenAPI schema)."""


setattr(public, PUBLIC_ATTRIBUTE, True)
