"""Request dependencies: the application context, the caller, and route authorisation.

Every route depends on exactly one of :func:`authorize` (with its action) or
:func:`public`; ``tests/test_architecture.py`` walks the route table to prove it.
Authentication reads the token in its own short read transaction; handlers open
their own unit of work so that the commit happens before the response is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ketch import iam
from ketch.core.errors import Unauthenticated
from ketch.core.logging import principal_var
from ketch.core.settings import KetchSettings
from ketch.iam import Action, Caller
from ketch.store.session import UnitOfWorkFactory

ACTION_ATTRIBUTE = "__ketch_action__"
PUBLIC_ATTRIBUTE = "__ketch_public__"

_bearer = HTTPBearer(auto_error=False, description="An API token from `ketch login`.")


class AppContext(Protocol):
    """What the API needs from the composition root (``ketch.server.context.Context``)."""

    settings: KetchSettings
    uow: UnitOfWorkFactory


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def _authenticate(
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token; sign in with `ketch login`")
    with context.uow() as uow:
        caller = iam.authenticate(uow, credentials.credentials)
    principal_var.set(caller.name)
    return caller


def authorize(action: Action) -> Callable[..., Caller]:
    """A dependency that authenticates the caller and checks ``action`` before the handler."""

    def dependency(caller: Annotated[Caller, Depends(_authenticate)]) -> Caller:
        iam.authorize(caller, action)
        return caller

    setattr(dependency, ACTION_ATTRIBUTE, action)
    dependency.__name__ = f"authorize_{action.value}"
    return dependency


def public() -> None:
    """Marks a route that needs no credentials (health, sign-in, the OpenAPI schema)."""


setattr(public, PUBLIC_ATTRIBUTE, True)
