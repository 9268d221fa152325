"""Routes of the org service: organisation, OUs, accounts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from ketch import iam, org
from ketch.api import resources
from ketch.api.deps import Guard, Target, authorize
from ketch.api.idempotent import create_once
from ketch.api.pagination import (
    DEFAULT_MAX_RESULTS,
    MaxResults,
    NextToken,
    decode_token,
    encode_token,
)
from ketch.iam import Action, ResourceRef
from ketch.schemas.common import Page
from ketch.schemas.org import (
    OU,
    Account,
    AccountCreate,
    AccountStatus,
    AccountUpdate,
    Organization,
    OUCreate,
    OUUpdate,
    Stage,
)

router = APIRouter(tags=["organization"])

OuPathQuery = Annotated[str | None, Query(max_length=512, description="OU path, e.g. teams/fraud")]


@router.get("/organization", summary="Describe the organisation")
def describe_organization(
    guard: Annotated[
        Guard, Depends(authorize(Action.DESCRIBE_ORGANIZATION, resources.organization()))
    ],
) -> Organization:
    with guard.context.uow() as uow:
        return org.get_organization(uow)


# -- OUs ------------------------------------------------------------------------------


@router.post("/ous", status_code=status.HTTP_201_CREATED, summary="Create an OU")
def create_ou(
    body: OUCreate,
    guard: Annotated[Guard, Depends(authorize(Action.CREATE_OU, resources.new_ou_from_body()))],
) -> OU:
    with guard.write() as uow:
        return create_once(
            uow,
            guard.caller,
            operation=Action.CREATE_OU.value,
            body=body,
            create=lambda: org.create_ou(
                uow,
                name=body.name,
                parent=body.parent,
                create_missing_parents=body.create_missing_parents,
            ),
            fetch=lambda ou_id: org.get_ou(uow, ou_id),
            id_of=lambda ou: ou.id,
        )


@router.get("/ous", summary="List OUs")
def list_ous(
    guard: Annotated[
        Guard, Depends(authorize(Action.LIST_OUS, resources.organization(), list_filter=True))
    ],
    parent: OuPathQuery = None,
    path: OuPathQuery = None,
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[OU]:
    after = decode_token("ous", next_token)
    with guard.context.uow() as uow:
        items, last = org.list_ous(uow, parent=parent, path=path, limit=max_results, after=after)
        if guard.filtered:
            items = [ou for ou in items if guard.can(Action.DESCRIBE_OU, _ou_target(ou.id))]
    return Page[OU](items=items, next_token=encode_token("ous", last))


@router.get("/ous/{ou_id}", summary="Describe an OU")
def describe_ou(
    ou_id: str,
    guard: Annotated[Guard, Depends(authorize(Action.DESCRIBE_OU, resources.ou_from_path()))],
) -> OU:
    with guard.context.uow() as uow:
        return org.get_ou(uow, ou_id)


@router.patch("/ous/{ou_id}", summary="Rename or move an OU")
def update_ou(
    ou_id: str,
    body: OUUpdate,
    guard: Annotated[Guard, Depends(authorize(Action.UPDATE_OU, resources.ou_change_from_path()))],
) -> OU:
    if body.parent is not None:
        destination = resources.ou_destination(guard.compiled, body.parent)
        guard.require(Action.CREATE_OU, destination, f"OU '{body.parent or '(root)'}'")
    with guard.write() as uow:
        return org.update_ou(uow, ou_id, name=body.name, parent=body.parent)


@router.delete("/ous/{ou_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an empty OU")
def delete_ou(
    ou_id: str,
    guard: Annotated[Guard, Depends(authorize(Action.DELETE_OU, resources.ou_from_path()))],
) -> Response:
    with guard.write() as uow:
        iam.check_ou_unreferenced(uow, ou_id)
        org.delete_ou(uow, ou_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- accounts -------------------------------------------------------------------------


@router.post("/accounts", status_code=status.HTTP_201_CREATED, summary="Create an account")
def create_account(
    body: AccountCreate,
    guard: Annotated[
        Guard, Depends(authorize(Action.CREATE_ACCOUNT, resources.new_account_from_body()))
    ],
) -> Account:
    with guard.write() as uow:
        return create_once(
            uow,
            guard.caller,
            operation=Action.CREATE_ACCOUNT.value,
            body=body,
            create=lambda: org.create_account(uow, body),
            fetch=lambda account_id: org.get_account(uow, account_id),
            id_of=lambda account: account.id,
        )


@router.get("/accounts", summary="List accounts")
def list_accounts(
    guard: Annotated[
        Guard, Depends(authorize(Action.LIST_ACCOUNTS, resources.organization(), list_filter=True))
    ],
    ou: OuPathQuery = None,
    stage: Stage | None = None,
    status: AccountStatus | None = None,
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[Account]:
    after = decode_token("accounts", next_token)
    with guard.context.uow() as uow:
        items, last = org.list_accounts(
            uow, ou=ou, stage=stage, status=status, limit=max_results, after=after
        )
        if guard.filtered:
            items = [a for a in items if guard.can(Action.DESCRIBE_ACCOUNT, _account_target(a.id))]
    return Page[Account](items=items, next_token=encode_token("accounts", last))


@router.get("/accounts/{account_id}", summary="Describe an account")
def describe_account(
    account_id: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DESCRIBE_ACCOUNT, resources.account_from_path()))
    ],
) -> Account:
    with guard.context.uow() as uow:
        return org.get_account(uow, account_id)


@router.patch("/accounts/{account_id}", summary="Update or move an account")
def update_account(
    account_id: str,
    body: AccountUpdate,
    guard: Annotated[
        Guard, Depends(authorize(Action.UPDATE_ACCOUNT, resources.account_change_from_path()))
    ],
) -> Account:
    if body.ou is not None:
        destination = resources.account_destination(guard.compiled, account_id, body.ou)
        guard.require(Action.CREATE_ACCOUNT, destination, f"OU '{body.ou or '(root)'}'")
    with guard.write() as uow:
        return org.update_account(uow, account_id, body)


@router.post("/accounts/{account_id}/close", summary="Close an account (keeps its records)")
def close_account(
    account_id: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.CLOSE_ACCOUNT, resources.account_from_path()))
    ],
) -> Account:
    with guard.write() as uow:
        return org.close_account(uow, account_id)


def _ou_target(ou_id: str) -> Target:
    return Target(ResourceRef("OU", ou_id))


def _account_target(account_id: str) -> Target:
    return Target(ResourceRef("Account", account_id), account=account_id)
