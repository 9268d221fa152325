"""Liveness and readiness probes (public, outside ``/api/v1``)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ketch.api.deps import ContextDep, public

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"], dependencies=[Depends(public)])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The server can reach its database",
    responses={503: {"description": "The database cannot be reached"}},
)
def readyz(context: ContextDep) -> JSONResponse:
    try:
        with context.uow() as uow:
            uow.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        logger.warning("readiness check failed: database unreachable", exc_info=True)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
