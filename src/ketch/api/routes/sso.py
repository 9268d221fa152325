"""Single sign-on through the configured OpenID Connect provider: start, callback, exchange.

All three routes are public: the caller has no token yet. ``/start`` sends the browser
to the provider (PKCE S256, state, nonce); the sign-in is kept in the database until the
provider sends the browser back to ``/callback``. The browser flow ends there with a new
API token in the response body (never in a URL). The CLI flow (``/start`` with
``cli_redirect``, a loopback URL) ends with a redirect to the CLI's listener carrying a
one-time exchange code, which the CLI trades for a token at ``/exchange``; a failure in
that flow is sent to the listener as ``error`` and ``error_description``, so the CLI can
report it. Sign-ins and their failures are audited as ``SignIn``; tokens, codes and
verifiers are never recorded or logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from ketch import audit, iam, sso
from ketch.api.deps import AppContext, ContextDep, public, sign_in_entry
from ketch.core.errors import KetchError, Unauthenticated
from ketch.core.settings import KetchSettings
from ketch.schemas.iam import TokenIssued
from ketch.schemas.sso import SsoExchangeRequest

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/auth/sso", tags=["identity"])

TOKEN_NAME = "sso"  # noqa: S105 (the name given to issued tokens)
NO_STORE = {"Cache-Control": "no-store"}


@dataclass
class _Attempt:
    """One sign-in attempt as the audit trail sees it; ``principal`` once it is known."""

    context: AppContext
    request: Request
    flow: str
    issuer: str
    principal: str | None = None

    def entry(
        self, *, principal_id: str | None = None, error_code: str | None = None
    ) -> audit.AuditEntry:
        return sign_in_entry(
            self.request,
            self.context,
            principal=self.principal,
            principal_id=principal_id,
            error_code=error_code,
            details={"method": "sso", "flow": self.flow, "issuer": self.issuer},
        )

    @contextmanager
    def audited(self) -> Iterator[None]:
        """Record any failure inside the block (in its own transaction), then re-raise."""
        try:
            yield
        except Exception as exc:
            code = exc.code.value if isinstance(exc, KetchError) else "InternalError"
            with self.context.uow(write=True) as uow:
                audit.record_event(uow, self.entry(error_code=code))
            logger.info("sso sign-in failed (%s, %s flow)", code, self.flow)
            raise


def _attempt(
    request: Request, context: AppContext, flow: str
) -> tuple[_Attempt, sso.OidcProviderConfig]:
    config = sso.provider_config(context.settings.sso)  # NotFound while SSO is off
    return _Attempt(context, request, flow, config.issuer), config


def _callback_url(request: Request, settings: KetchSettings) -> str:
    base = settings.sso.redirect_base or settings.server.public_url or str(request.base_url)
    return base.rstrip("/") + str(request.app.url_path_for("sso_callback"))


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


def _token_ttl(context: AppContext) -> timedelta:
    return timedelta(days=context.settings.auth.token_ttl_days)


@router.get(
    "/start",
    dependencies=[Depends(public)],
    status_code=302,
    response_class=RedirectResponse,
    summary="Begin a single sign-on at the identity provider",
    responses={302: {"description": "To the identity provider's sign-in page"}},
)
def start(
    request: Request,
    context: ContextDep,
    cli_redirect: Annotated[
        str | None,
        Query(description="The CLI's loopback listener, http://127.0.0.1:<port>/<path>."),
    ] = None,
) -> RedirectResponse:
    config = sso.provider_config(context.settings.sso)
    if cli_redirect is not None:
        sso.check_cli_redirect(cli_redirect)
    begun = sso.start_login(config, _callback_url(request, context.settings))
    with context.uow(write=True) as uow:
        sso.add_pending_login(uow, begun, ttl=config.login_ttl, cli_redirect=cli_redirect)
    return _redirect(begun.authorization_url)


@router.get(
    "/callback",
    name="sso_callback",
    dependencies=[Depends(public)],
    response_model=TokenIssued,
    summary="Finish a single sign-on (the identity provider sends the browser here)",
    responses={302: {"description": "CLI flow: to the CLI's listener with a one-time code"}},
)
def callback(request: Request, context: ContextDep) -> Response:
    attempt, config = _attempt(request, context, "browser")
    params = dict(request.query_params)
    with attempt.audited():
        state = params.get("state")
        if not state:
            reason = params.get("error_description") or params.get("error")
            raise Unauthenticated(
                f"the identity provider refused the sign-in: {reason}"
                if reason
                else "the sign-in callback carries no state; start the sign-in again"
            )
        with context.uow(write=True) as uow:
            pending = sso.take_pending_login(uow, state)
    if pending.cli_redirect is not None:
        attempt.flow = "cli"
    try:
        with attempt.audited():
            claims = sso.finish_login(config, pending, params, now=context.uow.clock.now())
            attempt.principal = claims.username
            return _signed_in(context, attempt, config, claims, pending.cli_redirect)
    except KetchError as exc:
        if pending.cli_redirect is None:
            raise
        return _redirect(
            _with_query(pending.cli_redirect, error=exc.code.value, error_description=exc.message)
        )


def _signed_in(
    context: AppContext,
    attempt: _Attempt,
    config: sso.OidcProviderConfig,
    claims: sso.IdentityClaims,
    cli_redirect: str | None,
) -> Response:
    """Provision the user, then a token (browser) or an exchange code (CLI), audited."""
    response: Response
    with context.uow(write=True) as uow:
        name = sso.provision(uow, config.issuer, claims, config.mapping)
        attempt.principal = name
        if cli_redirect is not None:
            code = sso.create_exchange_code(uow, name)
            response = _redirect(_with_query(cli_redirect, code=code))
        else:
            issued = iam.issue_token(uow, name, name=TOKEN_NAME, ttl=_token_ttl(context))
            response = JSONResponse(issued.model_dump(mode="json"), headers=NO_STORE)
        user_id = iam.user_id_of(uow, name)
        audit.record_event(uow, attempt.entry(principal_id=user_id))
    logger.info("user %s signed in through %s (%s flow)", name, config.issuer, attempt.flow)
    return response


@router.post(
    "/exchange",
    dependencies=[Depends(public)],
    summary="Trade the CLI's one-time sign-in code for an API token",
)
def exchange(
    body: SsoExchangeRequest, request: Request, response: Response, context: ContextDep
) -> TokenIssued:
    attempt, _ = _attempt(request, context, "cli")
    response.headers.update(NO_STORE)
    with attempt.audited(), context.uow(write=True) as uow:
        name = sso.redeem_exchange_code(uow, body.code)
        attempt.principal = name
        return iam.issue_token(uow, name, name=TOKEN_NAME, ttl=_token_ttl(context))
