"""The sso service: sign-in through an external OpenID Connect identity provider, with
just-in-time users and the provider's group claim mapped to ketch groups. Other services
and the API use only these names."""

from ketch.sso.oidc import (
    GroupMapping,
    IdentityClaims,
    LoginStart,
    OidcProviderConfig,
    PendingLogin,
    finish_login,
    start_login,
)
from ketch.sso.service import PendingLogins, ketch_user_name, provision

__all__ = [
    "GroupMapping",
    "IdentityClaims",
    "LoginStart",
    "OidcProviderConfig",
    "PendingLogin",
    "PendingLogins",
    "finish_login",
    "ketch_user_name",
    "provision",
    "start_login",
]
