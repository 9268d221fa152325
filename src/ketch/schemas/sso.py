"""Wire models of single sign-on (the API's ``/auth/sso/*`` routes and the SDK)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ketch.schemas.common import WireModel


class SsoExchangeRequest(WireModel):
    """The one-time code the server sent to the CLI's loopback listener."""

    code: Annotated[str, Field(min_length=1, max_length=256)]
