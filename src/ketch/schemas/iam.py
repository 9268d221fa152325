"""Identity and access on the wire: sign-in, users, groups, tokens, permission sets,
assignments, guardrails, the network policy, the caller's identity and the simulator."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from ketch.schemas.common import ReadModel, WireModel

Description = Annotated[str, Field(max_length=512)]
PolicyText = Annotated[str, Field(min_length=1, max_length=65536)]
Cidr = Annotated[str, Field(min_length=1, max_length=64)]
PrincipalType = Literal["user", "group"]
TargetType = Literal["account", "ou"]


class LoginRequest(WireModel):
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class Principal(ReadModel):
    id: str
    name: str
    type: str = "user"
    krn: str


class TokenIssued(ReadModel):
    """A new API token; ``token`` is shown this once and never again."""

    token: str
    token_id: str
    prefix: str
    expires_at: datetime | None
    principal: Principal
    read_only: bool = False
    account_ids: list[str] | None = None


class Token(ReadModel):
    """An API token as listed: never its secret."""

    id: str
    prefix: str
    name: str
    user: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    read_only: bool
    account_ids: list[str] | None


class TokenCreate(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=128)] = "cli"
    ttl_days: Annotated[int, Field(ge=1, le=3650)] = 30
    read_only: StrictBool = False
    account_ids: (
        Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=256)] | None
    ) = None


class User(ReadModel):
    id: str
    name: str
    krn: str
    display_name: str
    email: str | None
    source: str
    disabled: bool
    groups: list[str]
    created_at: datetime


class UserCreate(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    display_name: Annotated[str, Field(max_length=128)] = ""
    email: Annotated[str, Field(max_length=254)] | None = None


class UserUpdate(WireModel):
    display_name: Annotated[str, Field(max_length=128)] | None = None
    email: Annotated[str, Field(max_length=254)] | None = None
    disabled: StrictBool | None = None
    password: Annotated[str, Field(min_length=1, max_length=1024)] | None = None


class Group(ReadModel):
    id: str
    name: str
    krn: str
    description: str
    members: list[str]
    created_at: datetime


class GroupCreate(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    description: Description = ""


class GroupMemberAdd(WireModel):
    user: Annotated[str, Field(min_length=1, max_length=63)]


class PermissionSet(ReadModel):
    id: str
    name: str
    krn: str
    description: str
    policy_text: str
    builtin: bool
    allowed_cidrs: list[str] | None
    created_at: datetime
    updated_at: datetime


class PermissionSetCreate(WireModel):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    policy_text: PolicyText
    description: Description = ""
    allowed_cidrs: Annotated[list[Cidr], Field(max_length=256)] | None = None


class PermissionSetUpdate(WireModel):
    policy_text: PolicyText | None = None
    description: Description | None = None
    allowed_cidrs: Annotated[list[Cidr], Field(max_length=256)] | None = None


class Assignment(ReadModel):
    id: str
    permission_set: str
    principal_type: str
    principal: str
    target_type: str
    target: str
    created_at: datetime
    created_by: str | None


class AssignmentCreate(WireModel):
    permission_set: Annotated[str, Field(min_length=1, max_length=63)]
    principal_type: PrincipalType
    principal: Annotated[str, Field(min_length=1, max_length=63)]
    target_type: TargetType
    target: Annotated[str, Field(max_length=512, description="account id, or OU path")]


class Guardrail(ReadModel):
    id: str
    name: str
    krn: str
    description: str
    policy_text: str
    ou: str
    created_at: datetime
    updated_at: datetime


class GuardrailCreate(WireModel):
    """Exactly one of ``policy_text`` and ``example`` (a shipped guardrail, by name)."""

    name: Annotated[str, Field(min_length=1, max_length=63)]
    policy_text: PolicyText | None = None
    example: Annotated[str, Field(min_length=1, max_length=63)] | None = None
    ou: Annotated[str, Field(max_length=512, description="OU path; '' is the root")] = ""
    description: Description = ""

    @model_validator(mode="after")
    def _one_source(self) -> GuardrailCreate:
        if (self.policy_text is None) == (self.example is None):
            raise PydanticCustomError(
                "guardrail_source", "give exactly one of policy_text and example"
            )
        return self


class GuardrailExample(ReadModel):
    name: str
    policy_text: str


class GuardrailUpdate(WireModel):
    policy_text: PolicyText | None = None
    description: Description | None = None


class NetworkPolicy(ReadModel):
    """``allowed_cidrs=None`` allows any source address."""

    allowed_cidrs: list[str] | None


class NetworkPolicyUpdate(WireModel):
    allowed_cidrs: Annotated[list[Cidr], Field(max_length=256)] | None


class Reach(ReadModel):
    """One assignment that applies to the caller (directly or through a group)."""

    permission_set: str
    target_type: str
    target: str
    via: str


class Whoami(ReadModel):
    principal: Principal
    organization: str
    groups: list[str]
    reach: list[Reach]
    is_org_admin: bool
    token_id: str | None = None
    token_read_only: bool = False
    token_account_ids: list[str] | None = None


class SimulationRequest(WireModel):
    principal: Annotated[str, Field(min_length=1, max_length=63)]
    action: Annotated[str, Field(min_length=1, max_length=64)]
    resource: Annotated[str, Field(min_length=1, max_length=512, description="a KRN")]
    source_ip: Annotated[str, Field(max_length=64)] = "127.0.0.1"
    instance_type: Annotated[str, Field(max_length=64)] | None = None


class DecidingPolicy(ReadModel):
    id: str
    kind: str
    name: str
    detail: str


class SimulationResult(ReadModel):
    decision: Literal["Allow", "Deny"]
    deciding_policies: list[DecidingPolicy]
    errors: list[str]
    explanation: str
