"""Sign-in and the caller's identity."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ketch import audit, iam
from ketch.api import resources
from ketch.api.deps import ContextDep, Guard, authorize, public, sign_in_entry
from ketch.iam import Action
from ketch.schemas.iam import LoginRequest, TokenIssued, Whoami
from ketch.store.session import UnitOfWork

router = APIRouter(tags=["identity"])


@router.post(
    "/auth/login", dependencies=[Depends(public)], summary="Exchange a password for a token"
)
def login(body: LoginRequest, request: Request, context: ContextDep) -> TokenIssued:
    """Every attempt, failed or not, is on the audit trail (never the password)."""

    def record(uow: UnitOfWork, error_code: str | None) -> None:
        entry = sign_in_entry(
            request,
            context,
            principal=body.username,
            error_code=error_code,
            details={"method": "password"},
        )
        audit.record_event(uow, entry)

    ttl = timedelta(days=context.settings.auth.token_ttl_days)
    return iam.login(
        context.uow,
        username=body.username,
        password=body.password,
        token_ttl=ttl,
        record=record,
    )


@router.get("/whoami", summary="Who the caller is, its groups and what it may reach")
def whoami(
    guard: Annotated[
        Guard, Depends(authorize(Action.GET_CALLER_IDENTITY, resources.caller_self()))
    ],
) -> Whoami:
    is_org_admin = guard.caller.name in guard.compiled.org_admins
    with guard.context.uow() as uow:
        return iam.whoami(uow, guard.caller, is_org_admin=is_org_admin)
