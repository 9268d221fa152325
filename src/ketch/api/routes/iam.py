"""Routes of the iam service: users, groups, tokens, permission sets, assignments,
guardrails, the network policy and the policy simulator.

Identity and access resources belong to the organisation (they sit in the root OU),
except assignments and guardrails, which live in what they target so that an admin of
an OU can manage them there. Self-escalation is refused by system policies, fed by the
resolvers (``ketch.api.resources``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from ketch import iam
from ketch.api import resources
from ketch.api.deps import Guard, authorize
from ketch.api.pagination import (
    DEFAULT_MAX_RESULTS,
    MaxResults,
    NextToken,
    decode_token,
    encode_token,
    page_of,
)
from ketch.core.errors import InvalidInput
from ketch.iam import Action
from ketch.schemas.common import Page
from ketch.schemas.iam import (
    Assignment,
    AssignmentCreate,
    Group,
    GroupCreate,
    GroupMemberAdd,
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
    Token,
    TokenCreate,
    TokenIssued,
    User,
    UserCreate,
    UserUpdate,
)

router = APIRouter()

NameQuery = Annotated[str | None, Query(min_length=1, max_length=63)]


def _no_content() -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- users ----------------------------------------------------------------------------


@router.post(
    "/users", status_code=status.HTTP_201_CREATED, tags=["identity"], summary="Create a user"
)
def create_user(
    body: UserCreate,
    guard: Annotated[
        Guard, Depends(authorize(Action.CREATE_USER, resources.new_named("User", "user")))
    ],
) -> User:
    with guard.write() as uow:
        return iam.create_user(
            uow,
            name=body.name,
            password=body.password,
            display_name=body.display_name,
            email=body.email,
        )


@router.get("/users", tags=["identity"], summary="List users")
def list_users(
    guard: Annotated[Guard, Depends(authorize(Action.LIST_USERS, resources.organization()))],
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[User]:
    after = decode_token("users", next_token)
    with guard.context.uow() as uow:
        items, last = iam.list_users(uow, limit=max_results, after=after)
    return Page[User](items=items, next_token=encode_token("users", last))


@router.get("/users/{name}", tags=["identity"], summary="Describe a user")
def describe_user(
    name: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DESCRIBE_USER, resources.named("User", "user")))
    ],
) -> User:
    with guard.context.uow() as uow:
        return iam.get_user(uow, name)


@router.patch(
    "/users/{name}", tags=["identity"], summary="Update, disable or reset the password of a user"
)
def update_user(
    name: str,
    body: UserUpdate,
    guard: Annotated[
        Guard, Depends(authorize(Action.UPDATE_USER, resources.named("User", "user")))
    ],
) -> User:
    with guard.write() as uow:
        return iam.update_user(
            uow,
            name,
            display_name=body.display_name,
            email=body.email,
            disabled=body.disabled,
            password=body.password,
        )


@router.delete(
    "/users/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["identity"],
    summary="Delete a user, its tokens and its assignments",
)
def delete_user(
    name: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DELETE_USER, resources.named("User", "user")))
    ],
) -> Response:
    with guard.write() as uow:
        iam.delete_user(uow, name)
    return _no_content()


# -- groups ---------------------------------------------------------------------------


@router.post(
    "/groups", status_code=status.HTTP_201_CREATED, tags=["identity"], summary="Create a group"
)
def create_group(
    body: GroupCreate,
    guard: Annotated[
        Guard, Depends(authorize(Action.CREATE_GROUP, resources.new_named("Group", "group")))
    ],
) -> Group:
    with guard.write() as uow:
        return iam.create_group(uow, name=body.name, description=body.description)


@router.get("/groups", tags=["identity"], summary="List groups")
def list_groups(
    guard: Annotated[Guard, Depends(authorize(Action.LIST_GROUPS, resources.organization()))],
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[Group]:
    after = decode_token("groups", next_token)
    with guard.context.uow() as uow:
        items, last = iam.list_groups(uow, limit=max_results, after=after)
    return Page[Group](items=items, next_token=encode_token("groups", last))


@router.get("/groups/{name}", tags=["identity"], summary="Describe a group and its members")
def describe_group(
    name: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DESCRIBE_GROUP, resources.named("Group", "group")))
    ],
) -> Group:
    with guard.context.uow() as uow:
        return iam.get_group(uow, name)


@router.delete(
    "/groups/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["identity"],
    summary="Delete a group and its assignments",
)
def delete_group(
    name: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DELETE_GROUP, resources.named("Group", "group")))
    ],
) -> Response:
    with guard.write() as uow:
        iam.delete_group(uow, name)
    return _no_content()


@router.post("/groups/{name}/members", tags=["identity"], summary="Add a user to a group")
def add_group_member(
    name: str,
    body: GroupMemberAdd,
    guard: Annotated[
        Guard, Depends(authorize(Action.ADD_GROUP_MEMBER, resources.new_group_member()))
    ],
) -> Group:
    with guard.write() as uow:
        return iam.add_group_member(uow, name, body.user)


@router.delete(
    "/groups/{name}/members/{user}", tags=["identity"], summary="Remove a user from a group"
)
def remove_group_member(
    name: str,
    user: str,
    guard: Annotated[
        Guard,
        Depends(authorize(Action.REMOVE_GROUP_MEMBER, resources.named("Group", "group"))),
    ],
) -> Group:
    with guard.write() as uow:
        return iam.remove_group_member(uow, name, user)


# -- tokens ---------------------------------------------------------------------------


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    tags=["identity"],
    summary="Create an API token for the caller (its secret is shown once)",
)
def create_token(
    body: TokenCreate,
    guard: Annotated[Guard, Depends(authorize(Action.CREATE_TOKEN, resources.caller_self()))],
) -> TokenIssued:
    if body.account_ids is not None:
        unknown = sorted(set(body.account_ids) - set(guard.compiled.facts.org.accounts))
        if unknown:
            raise InvalidInput(f"no such account: {', '.join(unknown)}")
    with guard.write() as uow:
        return iam.issue_token(
            uow,
            guard.caller.name,
            name=body.name,
            ttl=timedelta(days=body.ttl_days),
            read_only=body.read_only,
            account_ids=body.account_ids,
        )


@router.get(
    "/tokens", tags=["identity"], summary="List the API tokens of the caller (or of ?user=)"
)
def list_tokens(
    guard: Annotated[
        Guard, Depends(authorize(Action.LIST_TOKENS, resources.token_owner_from_query()))
    ],
    user: NameQuery = None,
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[Token]:
    with guard.context.uow() as uow:
        tokens = iam.list_tokens(uow, user or guard.caller.name)
    items, token = page_of(
        "tokens", tokens, _token_key, max_results=max_results, next_token=next_token
    )
    return Page[Token](items=items, next_token=token)


def _token_key(token: Token) -> str:
    return f"{token.created_at.isoformat(timespec='microseconds')}|{token.id}"


@router.post("/tokens/{token_id}/revoke", tags=["identity"], summary="Revoke an API token")
def revoke_token(
    token_id: str,
    guard: Annotated[Guard, Depends(authorize(Action.REVOKE_TOKEN, resources.token_from_path()))],
) -> Token:
    with guard.write() as uow:
        return iam.revoke_token(uow, token_id)


# -- permission sets ------------------------------------------------------------------

_PERMISSION_SET = resources.named("PermissionSet", "permission-set")


@router.post(
    "/permission-sets",
    status_code=status.HTTP_201_CREATED,
    tags=["access"],
    summary="Create a permission set from Cedar policy templates",
)
def create_permission_set(
    body: PermissionSetCreate,
    guard: Annotated[
        Guard,
        Depends(
            authorize(
                Action.CREATE_PERMISSION_SET, resources.new_named("PermissionSet", "permission-set")
            )
        ),
    ],
) -> PermissionSet:
    with guard.write() as uow:
        return iam.create_permission_set(
            uow,
            name=body.name,
            policy_text=body.policy_text,
            description=body.description,
            allowed_cidrs=body.allowed_cidrs,
        )


@router.get("/permission-sets", tags=["access"], summary="List permission sets")
def list_permission_sets(
    guard: Annotated[
        Guard, Depends(authorize(Action.LIST_PERMISSION_SETS, resources.organization()))
    ],
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[PermissionSet]:
    with guard.context.uow() as uow:
        sets = iam.list_permission_sets(uow)
    items, token = page_of(
        "permission-sets", sets, _name, max_results=max_results, next_token=next_token
    )
    return Page[PermissionSet](items=items, next_token=token)


def _name(item: PermissionSet | Guardrail) -> str:
    return item.name


@router.get("/permission-sets/{name}", tags=["access"], summary="Describe a permission set")
def describe_permission_set(
    name: str,
    guard: Annotated[Guard, Depends(authorize(Action.DESCRIBE_PERMISSION_SET, _PERMISSION_SET))],
) -> PermissionSet:
    with guard.context.uow() as uow:
        return iam.get_permission_set(uow, name)


@router.patch("/permission-sets/{name}", tags=["access"], summary="Update a custom permission set")
def update_permission_set(
    name: str,
    body: PermissionSetUpdate,
    guard: Annotated[Guard, Depends(authorize(Action.UPDATE_PERMISSION_SET, _PERMISSION_SET))],
) -> PermissionSet:
    clear = "allowed_cidrs" in body.model_fields_set and body.allowed_cidrs is None
    with guard.write() as uow:
        return iam.update_permission_set(
            uow,
            name,
            policy_text=body.policy_text,
            description=body.description,
            allowed_cidrs=body.allowed_cidrs,
            clear_allowed_cidrs=clear,
        )


@router.delete(
    "/permission-sets/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["access"],
    summary="Delete a custom permission set that is not assigned",
)
def delete_permission_set(
    name: str,
    guard: Annotated[Guard, Depends(authorize(Action.DELETE_PERMISSION_SET, _PERMISSION_SET))],
) -> Response:
    with guard.write() as uow:
        iam.delete_permission_set(uow, name)
    return _no_content()


# -- assignments ----------------------------------------------------------------------


@router.post(
    "/assignments",
    status_code=status.HTTP_201_CREATED,
    tags=["access"],
    summary="Assign a permission set to a user or group on an account or OU",
)
def create_assignment(
    body: AssignmentCreate,
    guard: Annotated[
        Guard, Depends(authorize(Action.CREATE_ASSIGNMENT, resources.new_assignment_from_body()))
    ],
) -> Assignment:
    with guard.write() as uow:
        return iam.create_assignment(
            uow,
            permission_set=body.permission_set,
            principal_type=body.principal_type,
            principal=body.principal,
            target_type=body.target_type,
            target=body.target,
            created_by=guard.caller.name,
        )


@router.get("/assignments", tags=["access"], summary="List the assignments the caller may see")
def list_assignments(
    guard: Annotated[
        Guard,
        Depends(authorize(Action.LIST_ASSIGNMENTS, resources.organization(), list_filter=True)),
    ],
    principal_type: Annotated[str | None, Query(pattern="^(user|group)$")] = None,
    principal: NameQuery = None,
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[Assignment]:
    if (principal_type is None) != (principal is None):
        raise InvalidInput("give principal_type and principal together")
    with guard.context.uow() as uow:
        items = iam.list_assignments(uow, principal_type=principal_type, principal=principal)
        if guard.filtered:
            items = [
                a
                for a in items
                if guard.can(
                    Action.LIST_ASSIGNMENTS,
                    resources.assignment_target(guard.compiled, a.id, a.target_type, a.target),
                )
            ]
    page, token = page_of(
        "assignments", items, _assignment_key, max_results=max_results, next_token=next_token
    )
    return Page[Assignment](items=page, next_token=token)


def _assignment_key(assignment: Assignment) -> str:
    return f"{assignment.created_at.isoformat(timespec='microseconds')}|{assignment.id}"


@router.get("/assignments/{assignment_id}", tags=["access"], summary="Describe an assignment")
def describe_assignment(
    assignment_id: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.LIST_ASSIGNMENTS, resources.assignment_from_path()))
    ],
) -> Assignment:
    with guard.context.uow() as uow:
        return iam.get_assignment(uow, assignment_id)


@router.delete(
    "/assignments/{assignment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["access"],
    summary="Delete an assignment",
)
def delete_assignment(
    assignment_id: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DELETE_ASSIGNMENT, resources.assignment_from_path()))
    ],
) -> Response:
    with guard.write() as uow:
        iam.delete_assignment(uow, assignment_id)
    return _no_content()


# -- guardrails -----------------------------------------------------------------------


@router.post(
    "/guardrails",
    status_code=status.HTTP_201_CREATED,
    tags=["access"],
    summary="Attach a guardrail (Cedar forbid policies) to an OU",
)
def create_guardrail(
    body: GuardrailCreate,
    guard: Annotated[
        Guard, Depends(authorize(Action.CREATE_GUARDRAIL, resources.new_guardrail_from_body()))
    ],
) -> Guardrail:
    policy_text = body.policy_text
    if body.example is not None:
        policy_text = iam.EXAMPLE_GUARDRAILS.get(body.example)
        if policy_text is None:
            known = ", ".join(sorted(iam.EXAMPLE_GUARDRAILS))
            raise InvalidInput(f"no example guardrail '{body.example}'; examples: {known}")
    assert policy_text is not None  # GuardrailCreate demands one of the two
    with guard.write() as uow:
        return iam.create_guardrail(
            uow, name=body.name, policy_text=policy_text, ou=body.ou, description=body.description
        )


@router.get("/guardrails", tags=["access"], summary="List guardrails")
def list_guardrails(
    guard: Annotated[Guard, Depends(authorize(Action.LIST_GUARDRAILS, resources.organization()))],
    max_results: MaxResults = DEFAULT_MAX_RESULTS,
    next_token: NextToken = None,
) -> Page[Guardrail]:
    with guard.context.uow() as uow:
        guardrails = iam.list_guardrails(uow)
    items, token = page_of(
        "guardrails", guardrails, _name, max_results=max_results, next_token=next_token
    )
    return Page[Guardrail](items=items, next_token=token)


@router.get("/guardrail-examples", tags=["access"], summary="The example guardrails ketch ships")
def list_guardrail_examples(
    guard: Annotated[Guard, Depends(authorize(Action.LIST_GUARDRAILS, resources.organization()))],
) -> list[GuardrailExample]:
    return [
        GuardrailExample(name=name, policy_text=text)
        for name, text in sorted(iam.EXAMPLE_GUARDRAILS.items())
    ]


@router.get("/guardrails/{name}", tags=["access"], summary="Describe a guardrail")
def describe_guardrail(
    name: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DESCRIBE_GUARDRAIL, resources.guardrail_from_path()))
    ],
) -> Guardrail:
    with guard.context.uow() as uow:
        return iam.get_guardrail(uow, name)


@router.patch("/guardrails/{name}", tags=["access"], summary="Update a guardrail")
def update_guardrail(
    name: str,
    body: GuardrailUpdate,
    guard: Annotated[
        Guard, Depends(authorize(Action.UPDATE_GUARDRAIL, resources.guardrail_from_path()))
    ],
) -> Guardrail:
    with guard.write() as uow:
        return iam.update_guardrail(
            uow, name, policy_text=body.policy_text, description=body.description
        )


@router.delete(
    "/guardrails/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["access"],
    summary="Delete a guardrail",
)
def delete_guardrail(
    name: str,
    guard: Annotated[
        Guard, Depends(authorize(Action.DELETE_GUARDRAIL, resources.guardrail_from_path()))
    ],
) -> Response:
    with guard.write() as uow:
        iam.delete_guardrail(uow, name)
    return _no_content()


# -- network policy and simulator -----------------------------------------------------


@router.get(
    "/network-policy", tags=["access"], summary="The organisation's source address allow-list"
)
def describe_network_policy(
    guard: Annotated[
        Guard, Depends(authorize(Action.DESCRIBE_NETWORK_POLICY, resources.organization()))
    ],
) -> NetworkPolicy:
    with guard.context.uow() as uow:
        return iam.get_network_policy(uow)


@router.put(
    "/network-policy",
    tags=["access"],
    summary="Replace the allow-list (null allows every source address)",
)
def update_network_policy(
    body: NetworkPolicyUpdate,
    guard: Annotated[
        Guard, Depends(authorize(Action.UPDATE_NETWORK_POLICY, resources.organization()))
    ],
) -> NetworkPolicy:
    with guard.write() as uow:
        return iam.set_network_policy(
            uow, body.allowed_cidrs, caller_address=guard.request_facts.source_ip
        )


@router.post(
    "/iam/simulate",
    tags=["access"],
    summary="How a request would be decided, and by which policies",
)
def simulate_policy(
    body: SimulationRequest,
    guard: Annotated[Guard, Depends(authorize(Action.SIMULATE_POLICY, resources.organization()))],
) -> SimulationResult:
    with guard.context.uow() as uow:
        return iam.simulate(uow, guard.compiled, body)
