"""create_app(context) -> FastAPI: routers, middleware and error handlers in one place."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, FastAPI

from ketch.api.deps import AppContext
from ketch.api.errors import install_error_handlers
from ketch.api.middleware import KetchHttpMiddleware
from ketch.api.routes import artifacts, audit, auth, health, iam, jobs, org, sso
from ketch.schemas.common import ErrorEnvelope

API_PREFIX = "/api/v1"
API_ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    sso.router,
    org.router,
    iam.router,
    audit.router,
    artifacts.router,
    jobs.router,
)
_UPLOAD_PATH = re.compile(rf"^{API_PREFIX}/accounts/[^/]+/artifacts/.+")

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Invalid request",
        401: "Missing or invalid credentials",
        403: "Not allowed",
        404: "Not found",
        409: "Conflict with the current state",
        413: "Request body too large",
        429: "Too many requests",
        500: "Internal error",
    }.items()
}


def _version() -> str:
    try:
        return version("ketch")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(context: AppContext) -> FastAPI:
    """The ASGI application for one context (settings, database, backends)."""
    app = FastAPI(
        title="Ketch",
        version=_version(),
        description="Self-hosted, modular machine-learning platform for many teams.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    install_error_handlers(app)
    app.include_router(health.router)
    for router in API_ROUTERS:
        app.include_router(router, prefix=API_PREFIX, responses=_ERROR_RESPONSES)
    app.add_middleware(
        KetchHttpMiddleware,
        allowed_hosts=context.settings.server.allowed_hosts,
        max_body_bytes=context.settings.server.max_body_bytes,
        upload_limit=lambda method, path: (
            context.settings.artifacts.max_object_bytes
            if method == "PUT" and _UPLOAD_PATH.match(path)
            else None
        ),
    )
    return app
