"""Sign-in and the caller's identity on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from ketch.schemas.common import ReadModel, WireModel


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


class Whoami(ReadModel):
    principal: Principal
    organization: str
    is_org_admin: bool
    token_id: str | None = None
