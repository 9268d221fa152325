"""Liveness and readiness."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ketch.api import create_app
from ketch.server.context import build_context
from support.settings import make_settings


def test_healthz_and_readyz(http: TestClient) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ok", "database": "ok"}


def test_readyz_is_503_when_the_database_is_down(tmp_path: Path) -> None:
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/ketch?connect_timeout=1"
    context = build_context(make_settings(tmp_path, unreachable), migrate=False)
    try:
        with TestClient(create_app(context), base_url="http://testserver") as http:
            assert http.get("/healthz").status_code == 200
            response = http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["database"] == "unreachable"
    finally:
        context.close()
