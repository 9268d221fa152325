"""Organisation, organisational units and accounts on the wire."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, StrictBool

from ketch.core.krn import (
    ACCOUNT_ID_PATTERN,
    ACCOUNT_ID_RULE,
    NAME_PATTERN,
    NAME_RULE,
    validate_account_id,
    validate_name,
)
from ketch.schemas.common import ClientToken, ReadModel, WireModel, checked_by

TagKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9 _.:/=+@-]+$")]
TagValue = Annotated[str, Field(max_length=256, pattern=r"^[A-Za-z0-9 _.:/=+@-]*$")]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=50)]
OuPath = Annotated[
    str,
    Field(
        max_length=512,
        description="Path of OU names below the root, such as 'teams/fraud'; '' is the root.",
    ),
]
DisplayName = Annotated[str, Field(min_length=1, max_length=128)]
AccountId = Annotated[
    str,
    AfterValidator(checked_by(validate_account_id)),
    Field(
        description=f"Account id: {ACCOUNT_ID_RULE}.",
        json_schema_extra={"pattern": ACCOUNT_ID_PATTERN},
    ),
]
OuName = Annotated[
    str,
    AfterValidator(checked_by(lambda value: validate_name(value, kind="OU name"))),
    Field(description=f"OU name: {NAME_RULE}.", json_schema_extra={"pattern": NAME_PATTERN}),
]


class Stage(StrEnum):
    """What an account is for; guardrails and deployment rules key on it."""

    DEV = "dev"
    PREPROD = "preprod"
    PROD = "prod"
    SANDBOX = "sandbox"
    SHARED = "shared"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class Organization(ReadModel):
    id: str
    name: str
    krn: str
    root_ou_id: str
    created_at: datetime


class OUCreate(WireModel):
    name: OuName
    parent: OuPath = ""
    create_missing_parents: StrictBool = False
    client_token: ClientToken | None = None


class OUUpdate(WireModel):
    """Rename (``name``) and/or move (``parent``) an OU."""

    name: OuName | None = None
    parent: OuPath | None = None


class OU(ReadModel):
    id: str
    name: str
    path: str
    parent_id: str | None
    krn: str
    created_at: datetime
    updated_at: datetime


class AccountCreate(WireModel):
    id: AccountId
    display_name: DisplayName | None = None
    stage: Stage
    ou: OuPath = ""
    tags: Tags = Field(default_factory=dict)
    create_missing_ous: StrictBool = False
    client_token: ClientToken | None = None


class AccountUpdate(WireModel):
    """Change the display name, stage or tags, or move the account to another OU."""

    display_name: DisplayName | None = None
    stage: Stage | None = None
    tags: Tags | None = None
    ou: OuPath | None = None


class Account(ReadModel):
    id: str
    krn: str
    display_name: str
    stage: Stage
    status: AccountStatus
    tags: dict[str, str]
    ou_id: str
    ou_path: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
