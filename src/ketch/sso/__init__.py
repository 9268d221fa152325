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
from ketch.sso.service import (
    EXCHANGE_CODE_TTL,
    NOT_CONFIGURED,
    add_pending_login,
    check_cli_redirect,
    count_pending_logins,
    create_exchange_code,
    ketch_user_name,
    provider_config,
    provision,
    redeem_exchange_code,
    take_pending_login,
)

__all__ = [
    "EXCHANGE_CODE_TTL",
    "NOT_CONFIGURED",
    "GroupMapping",
    "IdentityClaims",
    "LoginStart",
    "OidcProviderConfig",
    "PendingLogin",
    "add_pending_login",
    "check_cli_redirect",
    "count_pending_logins",
    "create_exchange_code",
    "finish_login",
    "ketch_user_name",
    "provider_config",
    "provision",
    "redeem_exchange_code",
    "start_login",
    "take_pending_login",
]
