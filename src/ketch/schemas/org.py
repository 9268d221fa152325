"""Organisation, organisational units and accounts on the wire."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StrictBool

from ketch.schemas.common import ClientToken, ReadModel, WireModel

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
    name: str = Field(description="OU name (letters, digits, '.', '_', '-').")
    parent: OuPath = ""
    create_missing_parents: StrictBool = False
    client_token: ClientToken | None = None


class OUUpdate(WireModel):
    """Rename (``name``) and/or move (``parent``) an OU."""

    name: str | None = None
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
    id: str = Field(description="Account id slug, such as 'fraud-dev'.")
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
