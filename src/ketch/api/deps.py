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
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, Protocol
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ketch import audit, iam
from ketch.artifact_store import ArtifactStore
from ketch.core.errors import (
    ErrorCode,
    Forbidden,
    InvalidInput,
    KetchError,
    NotFound,
    Unauthenticated,
)
from ketch.core.logging import principal_var
from ketch.core.settings import KetchSettings
from ketch.iam import (
    Action,
    Authorizer,
    Caller,
    CompiledPolicies,
    RequestFacts,
    ResourceRef,
    decide,
)
from ketch.store.session import UnitOfWork, UnitOfWorkFactory

ACTION_ATTRIBUTE = "__ketch_action__"
PUBLIC_ATTRIBUTE = "__ketch_public__"

_bearer = HTTPBearer(auto_error=False, description="An API token from `ketch login`.")


class AppContext(Protocol):
    """What the API needs from the composition root (``ketch.server.context.Context``)."""

    settings: KetchSettings
    uow: UnitOfWorkFactory
    authorizer: Authorizer
    audit: audit.AuditTrail
    artifacts: ArtifactStore
    job_wakeup: threading.Event


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved resource: its Cedar entity, stored owner account and KRN.

    ``hidden_as_missing``: a denial to a caller who cannot even see ``account`` answers
    404, word for word as if the account did not exist.
    ``subject_is_caller`` and ``guardrail_governs_caller`` are what the resolver
    learnt about self-escalation (they enter the Cedar context); ``instance_type`` is
    the size a request asks for. ``audit_account`` names the account in the audit
    record when it is not the one authorised (an account being created).
    """

    resource: ResourceRef
    account: str | None = None
    krn: str | None = None
    hidden_as_missing: bool = False
    subject_is_caller: bool = False
    guardrail_governs_caller: bool = False
    instance_type: str | None = None
    audit_account: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a resolver may look at: path parameters, the JSON body, the caller, state."""

    uow: UnitOfWork
    compiled: CompiledPolicies
    caller: Caller
    path: dict[str, str]
    query: dict[str, str]
    body: Any


Resolver = Callable[[Resolution], Target]


def client_address(
    request: Request, trusted_proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> str:
    """The client's address: the socket peer, or ``X-Forwarded-For`` behind trusted proxies.

    Walks the forwarded chain from the right and stops at the first address that is
    not a trusted proxy, so a client cannot spoof its address by sending the header.
    """
    peer = request.client.host if request.client else "0.0.0.0"  # noqa: S104
    networks = trusted_proxies

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


SIGN_IN_ACTION = "SignIn"
"""The audit action of every sign-in attempt (password or single sign-on)."""


def sign_in_entry(
    request: Request,
    context: AppContext,
    *,
    principal: str | None,
    error_code: str | None,
    details: dict[str, str],
    principal_id: str | None = None,
) -> audit.AuditEntry:
    """The audit record of a sign-in attempt (password or single sign-on).

    ``principal`` is the name the attempt claimed, when known; ``details`` say how it
    signed in. Nothing secret enters it.
    """
    return audit.AuditEntry(
        principal=principal,
        principal_id=principal_id,
        account=None,
        action=SIGN_IN_ACTION,
        resource=None,
        request_id=getattr(request.state, "request_id", None),
        source_ip=client_address(request, context.settings.server.trusted_proxies),
        user_agent=request.headers.get("user-agent") or None,
        outcome=audit.Outcome.FAILED if error_code else audit.Outcome.SUCCESS,
        error_code=error_code,
        details=details,
    )


@dataclass
class Guard:
    """The outcome of authorisation, handed to the handler."""

    context: AppContext
    compiled: CompiledPolicies
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
            account=self.target.audit_account or self.target.account,
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
    def effect(self) -> Iterator[None]:
        """An audited change made outside the database (bytes into the artifact store).

        No transaction is held while it runs (an upload may take minutes); its record is
        written after it, success or failure, as :meth:`write` would.
        """
        with self._failures_recorded():
            yield
        with self.context.uow(write=True) as uow:
            audit.record_event(uow, self.entry(audit.Outcome.SUCCESS))

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        """A write unit of work whose audit record commits (or rolls back) with the change."""
        with self._failures_recorded(), self.context.uow(write=True) as uow:
            yield uow
            audit.record_event(uow, self.entry(audit.Outcome.SUCCESS))

    @contextmanager
    def _failures_recorded(self) -> Iterator[None]:
        """Whatever the block raises is recorded as a failure (in its own transaction)
        and raised again."""
        try:
            yield
        except KetchError as exc:
            self._record_failure(exc.code.value)
            raise
        except Exception:
            self._record_failure("InternalError")
            raise

    def _record_failure(self, code: str) -> None:
        with self.context.uow(write=True) as uow:
            audit.record_event(uow, self.entry(audit.Outcome.FAILED, code))

    def refuse(self, error: KetchError) -> NoReturn:
        """Record the denial in its own transaction and raise ``error``."""
        with self.context.uow(write=True) as uow:
            audit.record_event(uow, self.entry(audit.Outcome.DENIED, error.code.value))
        raise error

    def require(self, action: Action, target: Target, what: str) -> None:
        """Refuse the request (audited) unless the caller may also ``action`` on
        ``target``: a second resource the request touches, such as where a move leads."""
        if not self.can(action, target):
            self.refuse(
                Forbidden(f"{self.caller.name} is not allowed to perform {action.value} on {what}")
            )

    def can(self, action: Action, target: Target) -> bool:
        """Whether the caller may ``action`` on ``target`` (for filtering lists)."""
        return decide(
            self.compiled,
            self.caller,
            action,
            target.resource,
            account=target.account,
            facts=self.request_facts,
        ).allowed


JSON_MEDIA_TYPE = "application/json"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _transport_refusal(
    request: Request, settings: KetchSettings, body_media_type: str = JSON_MEDIA_TYPE
) -> KetchError | None:
    """Why a request must be refused before its handler runs, if it must.

    A browser on another site may send requests with the user's credentials; it always
    names its ``Origin``, which must be the server's own (or ``server.public_url``).
    Routes take JSON (uploads take ``body_media_type``): a body of any other type is
    refused instead of being guessed at.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        own = {_origin_of(str(request.base_url))}
        if settings.server.public_url:
            own.add(_origin_of(settings.server.public_url))
        if origin.strip().lower() not in own:
            return Forbidden(f"cross-origin requests are refused (Origin '{origin[:100]}')")
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    if request.method in _BODY_METHODS and has_body and _media_type(request) != body_media_type:
        shown = _media_type(request)[:100] or "none"
        return InvalidInput(
            f"request bodies must be {body_media_type} (got content type '{shown}')",
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        )
    return None


def _presented_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    if "access_token" in request.query_params or "token" in request.query_params:
        raise Unauthenticated("tokens are accepted only in the Authorization header")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token; sign in with `ketch login`")
    return credentials.credentials


def authorize(
    action: Action,
    resource: Resolver,
    *,
    list_filter: bool = False,
    body_media_type: str = JSON_MEDIA_TYPE,
) -> Callable[..., Awaitable[Guard]]:
    """A dependency that authenticates, resolves the resource and checks ``action`` first.

    ``list_filter=True`` (list routes): a denial on the container does not fail the
    request; the guard is marked ``filtered`` and the handler keeps only the items the
    caller may describe. ``body_media_type``: what the route's body must be (an upload
    route streams ``application/octet-stream``; nothing reads it before the handler).
    """

    async def dependency(
        request: Request,
        context: ContextDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Guard:
        token = _presented_token(request, credentials)
        # The caller is known before a byte of the body is read: a stranger's request
        # costs a header's worth of work, whatever it claims to carry.
        with context.uow() as uow:
            caller = iam.authenticate(uow, token)
        body = None
        if body_media_type == JSON_MEDIA_TYPE and _media_type(request) == JSON_MEDIA_TYPE:
            try:
                body = await request.json()  # parsed once: Starlette caches it for FastAPI
            except ValueError:
                body = None  # FastAPI answers the malformed body with 400 itself
        # Resolution and the decision share one read transaction.
        with context.uow() as uow:
            compiled = context.authorizer.compiled(uow)
            target = resource(
                Resolution(
                    uow,
                    compiled,
                    caller,
                    dict(request.path_params),
                    dict(request.query_params),
                    body,
                )
            )
        principal_var.set(caller.name)
        if caller.token_use_stale and caller.token_id:
            with context.uow(write=True) as uow:
                iam.touch_token(uow, caller.token_id)
        facts = RequestFacts(
            source_ip=client_address(request, context.settings.server.trusted_proxies),
            subject_is_caller=target.subject_is_caller,
            guardrail_governs_caller=target.guardrail_governs_caller,
            instance_type=target.instance_type,
        )
        guard = Guard(
            context=context,
            compiled=compiled,
            caller=caller,
            action=action,
            target=target,
            request_facts=facts,
            request_id=getattr(request.state, "request_id", None),
            user_agent=request.headers.get("user-agent") or None,
        )
        refusal = _transport_refusal(request, context.settings, body_media_type)
        if refusal is not None:
            guard.refuse(refusal)
        decision = decide(
            compiled, caller, action, target.resource, account=target.account, facts=facts
        )
        guard.policy_ids = decision.policy_ids
        if decision.allowed:
            return guard
        if list_filter:
            guard.filtered = True
            return guard
        # Cedar names the forbids that denied (none for an implicit deny).
        forbids = sorted(
            {compiled.sources[p].name for p in decision.policy_ids if p in compiled.sources}
        )
        because = f": explicitly denied by {', '.join(forbids)}" if forbids else ""
        error: KetchError = Forbidden(
            f"{caller.name} is not allowed to perform {action.value} on this resource{because}"
        )
        if target.hidden_as_missing and target.account is not None:
            account = Target(ResourceRef("Account", target.account), account=target.account)
            if not guard.can(Action.DESCRIBE_ACCOUNT, account):
                # Word for word what a missing account gets: nothing tells them apart.
                error = NotFound(f"account '{target.account}' does not exist")
        guard.refuse(error)

    setattr(dependency, ACTION_ATTRIBUTE, action)
    dependency.__name__ = f"authorize_{action.value}"
    return dependency


def public() -> None:
    """Marks a route that needs no credentials (health, sign-in, the OpenAPI schema)."""


setattr(public, PUBLIC_ATTRIBUTE, True)
