"""Sign-in and whoami over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from support.envelope import assert_envelope


def test_login_issues_a_token_that_works(
    http: TestClient, admin_credentials: dict[str, str]
) -> None:
    response = http.post("/api/v1/auth/login", json=admin_credentials)
    assert response.status_code == 200, response.text
    issued = response.json()
    assert issued["token"].startswith(f"ketch_{issued['prefix']}_")
    me = http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {issued['token']}"})
    assert me.json()["principal"]["name"] == "admin"
    assert me.json()["is_org_admin"] is True
    assert me.json()["token_id"] == issued["token_id"]


def test_wrong_password_and_unknown_user_look_the_same(
    http: TestClient, admin_credentials: dict[str, str]
) -> None:
    attempt = "Wrong-Horse-7-battery"
    wrong = http.post("/api/v1/auth/login", json={**admin_credentials, "password": attempt})
    unknown = http.post("/api/v1/auth/login", json={"username": "ghost", "password": attempt})
    first = assert_envelope(wrong, 401, "Unauthenticated")
    second = assert_envelope(unknown, 401, "Unauthenticated")
    assert first["message"] == second["message"]
    assert attempt not in wrong.text and attempt not in unknown.text  # never echoed back
