"""Sign-in and the caller's identity."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends

from ketch import iam, org
from ketch.api.deps import ContextDep, authorize, public
from ketch.iam import Action, Caller
from ketch.schemas.iam import LoginRequest, TokenIssued, Whoami

router = APIRouter(tags=["identity"])


@router.post(
    "/auth/login", dependencies=[Depends(public)], summary="Exchange a password for a token"
)
def login(body: LoginRequest, context: ContextDep) -> TokenIssued:
    ttl = timedelta(days=context.settings.auth.token_ttl_days)
    with context.uow(write=True) as uow:
        return iam.login(uow, username=body.username, password=body.password, token_ttl=ttl)


@router.get("/whoami", summary="Who the caller is")
def whoami(
    context: ContextDep,
    caller: Annotated[Caller, Depends(authorize(Action.GET_CALLER_IDENTITY))],
) -> Whoami:
    with context.uow() as uow:
        organization = org.get_organization(uow)
    return Whoami(
        principal=caller.principal,
        organization=organization.name,
        is_org_admin=caller.is_org_admin,
        token_id=caller.token_id,
    )
