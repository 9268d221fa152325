"""OpenID Connect relying party: authorisation code flow with PKCE (S256).

:func:`start_login` builds the provider's authorisation URL (discovered from
``<issuer>/.well-known/openid-configuration``) with a fresh ``state``, ``nonce`` and PKCE
code verifier; :func:`finish_login` checks the callback against the pending login,
exchanges the code at the token endpoint (client authentication: ``client_secret_basic``)
and validates the ID token with the provider's JWKS (signature, issuer, audience,
expiry, issued-at and nonce) before reading the user's claims. The ID token is the only
source of identity; the userinfo endpoint is consulted only for claims the ID token
lacks, and only when its ``sub`` matches.

HTTP goes through Authlib's httpx client (``OAuth2Client``, the httpx spelling of
``OAuth2Session``); callers may pass ``client_options`` (a ``transport``, ``timeout``, …)
through to it.
"""

from __future__ import annotations

import hmac
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from ketch.core.errors import BackendUnavailable, InvalidInput, Unauthenticated
from ketch.core.krn import validate_name

with warnings.catch_warnings():
    # Authlib >= 1.7 prefers the `httpx2` distribution and warns when it falls back to
    # `httpx` (a ketch dependency already); the fallback is what we want.
    warnings.filterwarnings("ignore", message=".*httpx module is deprecated.*")
    from authlib.integrations.httpx_client import OAuth2Client

DISCOVERY_PATH = "/.well-known/openid-configuration"
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
CLOCK_LEEWAY_SECONDS = 60
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _valid_group_targets(groups: dict[str, str]) -> dict[str, str]:
    for target in groups.values():
        validate_name(target, kind="ketch group name")
    return groups


# Provider group -> ketch group; checked where it is configured, not at the first sign-in.
GroupTargets = Annotated[dict[str, str], AfterValidator(_valid_group_targets)]


class GroupMapping(BaseModel):
    """How the provider's group names become ketch group names.

    ``groups`` maps a provider group to a ketch group; a provider group missing from it
    is dropped (``unmapped="drop"``, the default) or kept under its own name
    (``unmapped="same-name"``) when that is a valid ketch group name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: GroupTargets = Field(default_factory=dict)
    unmapped: Literal["drop", "same-name"] = "drop"

    def apply(self, provider_groups: list[str]) -> list[str]:
        """The ketch groups for ``provider_groups`` (sorted, without duplicates)."""
        result: set[str] = set()
        for group in provider_groups:
            if group in self.groups:
                result.add(self.groups[group])
            elif self.unmapped == "same-name":
                try:
                    result.add(validate_name(group, kind="group name"))
                except InvalidInput:
                    continue
        return sorted(result)


class OidcProviderConfig(BaseModel):
    """One external OpenID Connect identity provider and its client registration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str
    client_id: str
    client_secret: SecretStr
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email", "groups"])
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    group_mapping: GroupTargets = Field(default_factory=dict)
    unmapped_groups: Literal["drop", "same-name"] = "drop"
    login_ttl: timedelta = timedelta(minutes=10)

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        url = urlsplit(value)
        secure = url.scheme == "https" or (url.scheme == "http" and url.hostname in LOOPBACK_HOSTS)
        if not secure or not url.hostname or url.query or url.fragment:
            raise ValueError(
                "the issuer must be an https URL without query or fragment "
                "(plain http only on loopback)"
            )
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        return value if "openid" in value else ["openid", *value]

    @property
    def mapping(self) -> GroupMapping:
        return GroupMapping(groups=self.group_mapping, unmapped=self.unmapped_groups)


class LoginStart(NamedTuple):
    """What :func:`start_login` returns: send the browser to ``authorization_url``."""

    authorization_url: str
    state: str
    code_verifier: str
    nonce: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A started login, kept until its callback arrives (never sent to the browser).

    ``cli_redirect`` is the CLI's loopback listener when the CLI started the login.
    """

    state: str
    code_verifier: str
    nonce: str
    redirect_uri: str
    expires_at: datetime
    cli_redirect: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityClaims:
    """The verified identity of a user signed in at the provider."""

    issuer: str
    subject: str
    username: str
    email: str | None = None
    display_name: str = ""
    groups: list[str] = field(default_factory=list)


def _client(
    config: OidcProviderConfig, redirect_uri: str, client_options: dict[str, Any] | None
) -> OAuth2Client:
    options: dict[str, Any] = {"timeout": 10.0, **(client_options or {})}
    return OAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret.get_secret_value(),
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
        scope=" ".join(config.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        **options,
    )


def _get_json(client: OAuth2Client, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = client.request("GET", url, withhold_token=True, **kwargs)
        response.raise_for_status()
        body = response.json()
    except Exception as exc:  # network, HTTP status or JSON: all mean the provider failed us
        raise BackendUnavailable(f"could not read {what} from {url}: {exc}") from exc
    if not isinstance(body, dict):
        raise BackendUnavailable(f"{what} from {url} is not a JSON object")
    return body


def _discover(client: OAuth2Client, issuer: str) -> dict[str, Any]:
    """The provider's metadata; its ``issuer`` must be exactly the configured one."""
    metadata = _get_json(client, issuer + DISCOVERY_PATH, "OpenID configuration")
    if str(metadata.get("issuer", "")).rstrip("/") != issuer:
        raise BackendUnavailable(
            f"the OpenID configuration of {issuer} names another issuer "
            f"({metadata.get('issuer')!r}); check the configured issuer URL"
        )
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not metadata.get(key):
            raise BackendUnavailable(f"the OpenID configuration of {issuer} has no {key}")
    return metadata


def start_login(
    config: OidcProviderConfig,
    redirect_uri: str,
    *,
    client_options: dict[str, Any] | None = None,
) -> LoginStart:
    """Begin a login: the provider URL to send the browser to, and the secrets to keep."""
    with _client(config, redirect_uri, client_options) as client:
        metadata = _discover(client, config.issuer)
        methods = metadata.get("code_challenge_methods_supported")
        if methods is not None and "S256" not in methods:
            raise BackendUnavailable(f"{config.issuer} does not support PKCE with S256")
        state = generate_token(32)
        nonce = generate_token(32)
        code_verifier = generate_token(64)
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            code_verifier=code_verifier,
            nonce=nonce,
        )
    return LoginStart(url, state, code_verifier, nonce, redirect_uri)


def finish_login(
    config: OidcProviderConfig,
    pending: PendingLogin,
    callback_params: dict[str, str],
    *,
    now: datetime,
    client_options: dict[str, Any] | None = None,
) -> IdentityClaims:
    """Complete a login from the callback's query parameters; the verified identity.

    Raises :class:`Unauthenticated` when the callback does not belong to ``pending``, the
    provider reports an error, the code is refused (wrong, expired or replayed) or the
    ID token does not verify; :class:`BackendUnavailable` when the provider misbehaves.
    """
    if now >= pending.expires_at:
        raise Unauthenticated("the sign-in took too long; start it again")
    if "error" in callback_params:
        detail = callback_params.get("error_description") or callback_params["error"]
        raise Unauthenticated(f"the identity provider refused the sign-in: {detail}")
    if not hmac.compare_digest(callback_params.get("state", ""), pending.state):
        raise Unauthenticated("the sign-in callback does not match a sign-in in progress")
    returned_issuer = callback_params.get("iss")
    if returned_issuer is not None and returned_issuer.rstrip("/") != config.issuer:
        raise Unauthenticated("the sign-in callback comes from another identity provider")
    code = callback_params.get("code")
    if not code:
        raise Unauthenticated("the sign-in callback carries no authorisation code")

    with _client(config, pending.redirect_uri, client_options) as client:
        metadata = _discover(client, config.issuer)
        try:
            token = client.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=pending.code_verifier,
                redirect_uri=pending.redirect_uri,
            )
        except OAuthError as exc:
            raise Unauthenticated(
                f"the identity provider refused the authorisation code: {exc.error}"
            ) from exc
        id_token = token.get("id_token")
        if not id_token:
            raise Unauthenticated("the identity provider returned no ID token")
        jwks = _get_json(client, metadata["jwks_uri"], "signing keys")
        claims = _verify_id_token(config, id_token, jwks, metadata, nonce=pending.nonce)
        missing = {config.username_claim, config.groups_claim} - claims.keys()
        access_token = token.get("access_token")
        if missing and access_token and metadata.get("userinfo_endpoint"):
            userinfo = _get_json(
                client,
                metadata["userinfo_endpoint"],
                "user info",
                headers={"Authorization": f"Bearer {access_token}"},
            )
            if userinfo.get("sub") == claims["sub"]:
                claims = {**userinfo, **claims}
    return _identity(config, claims)


def _verify_id_token(
    config: OidcProviderConfig,
    id_token: str,
    jwks: dict[str, Any],
    metadata: dict[str, Any],
    *,
    nonce: str,
) -> dict[str, Any]:
    advertised = metadata.get("id_token_signing_alg_values_supported") or ID_TOKEN_ALGORITHMS
    algorithms = [a for a in advertised if a in ID_TOKEN_ALGORITHMS]
    if not algorithms:
        # An empty list would make joserfc fall back to its defaults (HS256 among them).
        raise BackendUnavailable(
            f"{config.issuer} signs ID tokens with none of {', '.join(ID_TOKEN_ALGORITHMS)}"
        )
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        decoded = jwt.decode(id_token, keys, algorithms=algorithms)
        registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": config.issuer},
            sub={"essential": True},
            aud={"essential": True, "value": config.client_id},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        registry.validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise Unauthenticated(f"the ID token from the identity provider is invalid: {exc}") from exc
    claims = dict(decoded.claims)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != config.client_id:
        raise Unauthenticated("the ID token was issued to another client (azp)")
    return claims


def _identity(config: OidcProviderConfig, claims: dict[str, Any]) -> IdentityClaims:
    raw_groups = claims.get(config.groups_claim, [])
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    if not isinstance(raw_groups, list):
        raise Unauthenticated(f"the ID token's {config.groups_claim!r} claim is not a list")
    username = claims.get(config.username_claim)
    if not isinstance(username, str) or not username:
        raise Unauthenticated(
            f"the identity provider sent no {config.username_claim!r} claim; "
            "set username_claim to a claim it does send"
        )
    email = claims.get("email")
    return IdentityClaims(
        issuer=config.issuer,
        subject=str(claims["sub"]),
        username=username,
        email=email if isinstance(email, str) else None,
        display_name=str(claims.get("name") or ""),
        groups=[str(g) for g in raw_groups],
    )
