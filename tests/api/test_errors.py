"""Every failure leaves as the one error envelope with the right status."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ketch.api.errors import STATUS_OF
from ketch.core.errors import ErrorCode
from support.envelope import assert_envelope


def test_every_code_has_a_status() -> None:
    assert set(STATUS_OF) == set(ErrorCode)


def test_unknown_route_is_404_envelope(http: TestClient) -> None:
    assert_envelope(http.get("/api/v1/nothing-here"), 404, "NotFound")


def test_wrong_method_is_405_envelope(http: TestClient, auth_headers: dict[str, str]) -> None:
    assert_envelope(http.put("/api/v1/accounts", headers=auth_headers), 405, "MethodNotAllowed")


def test_missing_token_is_401(http: TestClient) -> None:
    response = http.get("/api/v1/accounts")
    error = assert_envelope(response, 401, "Unauthenticated")
    assert "ketch login" in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_bad_token_is_401(http: TestClient) -> None:
    headers = {"Authorization": "Bearer ketch_AAAAAAAA_not-a-real-secret"}
    assert_envelope(http.get("/api/v1/accounts", headers=headers), 401, "Unauthenticated")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "fraud-dev", "stage": "nope"}, "stage"),
        ({"id": 42, "stage": "dev"}, "id"),
        ({"id": "fraud-dev", "stage": "dev", "colour": "red"}, "colour"),
        ({"stage": "dev"}, "id"),
        ({"id": "fraud-dev", "stage": "dev", "tags": {"k": 1}}, "tags.k"),
    ],
)
def test_validation_errors_are_400_and_name_the_field(
    http: TestClient, auth_headers: dict[str, str], body: dict, field: str
) -> None:
    error = assert_envelope(
        http.post("/api/v1/accounts", json=body, headers=auth_headers), 400, "ValidationError"
    )
    assert any(field in problem["field"] for problem in error["details"]["errors"])
    assert http.get("/api/v1/accounts", headers=auth_headers).json()["items"] == []


def test_malformed_json_is_400(http: TestClient, auth_headers: dict[str, str]) -> None:
    response = http.post(
        "/api/v1/accounts",
        content=b'{"id": "x",',
        headers={**auth_headers, "content-type": "application/json"},
    )
    assert_envelope(response, 400, "ValidationError")


def test_unexpected_exception_is_500_without_internals(context) -> None:  # type: ignore[no-untyped-def]
    from ketch.api import create_app

    app: FastAPI = create_app(context)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as http:
        response = http.get("/boom")
    error = assert_envelope(response, 500, "InternalError")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert error["message"].startswith("internal error")
