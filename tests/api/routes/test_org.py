"""The org routes over HTTP: OUs, accounts, idempotent creates, pagination, bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from support.envelope import assert_envelope

Headers = dict[str, str]


def _account(http: TestClient, headers: Headers, account_id: str, **fields: object):  # type: ignore[no-untyped-def]
    body = {
        "id": account_id,
        "stage": "dev",
        "ou": "teams/fraud",
        "create_missing_ous": True,
        **fields,
    }
    return http.post("/api/v1/accounts", json=body, headers=headers)


def test_create_describe_list_account(http: TestClient, auth_headers: Headers) -> None:
    created = _account(http, auth_headers, "fraud-dev", tags={"team": "fraud"})
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["krn"] == "krn:ketch::account/fraud-dev"
    assert account["ou_path"] == "teams/fraud"
    assert account["status"] == "active"
    assert http.get("/api/v1/accounts/fraud-dev", headers=auth_headers).json() == account
    listed = http.get("/api/v1/accounts", params={"ou": "teams/fraud"}, headers=auth_headers)
    assert [a["id"] for a in listed.json()["items"]] == ["fraud-dev"]


def test_missing_ou_needs_the_explicit_flag(http: TestClient, auth_headers: Headers) -> None:
    response = http.post(
        "/api/v1/accounts",
        headers=auth_headers,
        json={"id": "fraud-dev", "stage": "dev", "ou": "teams/fraud"},
    )
    error = assert_envelope(response, 404, "NotFound")
    assert "teams" in error["message"] and "create_missing_ous" in error["message"]
    assert http.get("/api/v1/ous", headers=auth_headers).json()["items"][0]["path"] == ""
    assert len(http.get("/api/v1/ous", headers=auth_headers).json()["items"]) == 1


def test_client_token_makes_create_idempotent(http: TestClient, auth_headers: Headers) -> None:
    first = _account(http, auth_headers, "fraud-dev", client_token="tok-1")
    again = _account(http, auth_headers, "fraud-dev", client_token="tok-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    different = _account(http, auth_headers, "fraud-dev", client_token="tok-1", stage="prod")
    error = assert_envelope(different, 409, "Conflict")
    assert "client_token" in error["message"]
    plain_repeat = _account(http, auth_headers, "fraud-dev")
    assert_envelope(plain_repeat, 409, "Conflict")


def test_pagination_walks_every_account_once(http: TestClient, auth_headers: Headers) -> None:
    ids = [f"acct-{n:02d}" for n in range(7)]
    for account_id in reversed(ids):
        assert _account(http, auth_headers, account_id).status_code == 201
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, object] = {"max_results": 3}
        if token:
            params["next_token"] = token
        page = http.get("/api/v1/accounts", params=params, headers=auth_headers).json()
        seen += [a["id"] for a in page["items"]]
        pages += 1
        token = page["next_token"]
        if token is None:
            break
    assert seen == ids
    assert pages == 3


@pytest.mark.parametrize("max_results", [0, -1, 1001, "many"])
def test_bad_page_size_is_400(http: TestClient, auth_headers: Headers, max_results: object) -> None:
    response = http.get(
        "/api/v1/accounts", params={"max_results": max_results}, headers=auth_headers
    )
    assert_envelope(response, 400, "ValidationError")


@pytest.mark.parametrize(
    "account_id", ["Fraud", "a/b", "..", "ab", "x" * 41, "fraud--dev", "admin", "dev\u0000", "-a1"]
)
def test_invalid_account_ids_change_nothing(
    http: TestClient, auth_headers: Headers, account_id: str
) -> None:
    response = http.post(
        "/api/v1/accounts", headers=auth_headers, json={"id": account_id, "stage": "dev"}
    )
    error = assert_envelope(response, 400, "ValidationError")
    assert "account id" in error["message"]
    assert http.get("/api/v1/accounts", headers=auth_headers).json()["items"] == []


def test_invalid_ou_path_in_account_create_writes_no_ous(
    http: TestClient, auth_headers: Headers
) -> None:
    response = _account(http, auth_headers, "fraud-dev", ou="teams/../etc")
    assert_envelope(response, 400, "ValidationError")
    assert len(http.get("/api/v1/ous", headers=auth_headers).json()["items"]) == 1


def test_close_keeps_the_record_and_blocks_changes(http: TestClient, auth_headers: Headers) -> None:
    _account(http, auth_headers, "fraud-dev")
    closed = http.post("/api/v1/accounts/fraud-dev/close", headers=auth_headers)
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed" and closed.json()["closed_at"]
    update = http.patch("/api/v1/accounts/fraud-dev", json={"stage": "prod"}, headers=auth_headers)
    assert_envelope(update, 409, "Conflict")
    listed = http.get("/api/v1/accounts", params={"status": "closed"}, headers=auth_headers)
    assert [a["id"] for a in listed.json()["items"]] == ["fraud-dev"]


def test_move_account_and_ou_lifecycle(http: TestClient, auth_headers: Headers) -> None:
    _account(http, auth_headers, "fraud-dev")
    ml = http.post("/api/v1/ous", json={"name": "ml", "parent": "teams"}, headers=auth_headers)
    assert ml.status_code == 201 and ml.json()["path"] == "teams/ml"
    moved = http.patch("/api/v1/accounts/fraud-dev", json={"ou": "teams/ml"}, headers=auth_headers)
    assert moved.json()["ou_path"] == "teams/ml"

    fraud = http.get("/api/v1/ous", params={"path": "teams/fraud"}, headers=auth_headers)
    fraud_id = fraud.json()["items"][0]["id"]
    renamed = http.patch(f"/api/v1/ous/{fraud_id}", json={"name": "risk"}, headers=auth_headers)
    assert renamed.json()["path"] == "teams/risk"
    assert http.delete(f"/api/v1/ous/{fraud_id}", headers=auth_headers).status_code == 204

    busy = http.delete(f"/api/v1/ous/{ml.json()['id']}", headers=auth_headers)
    assert "account" in assert_envelope(busy, 409, "Conflict")["message"]
    assert_envelope(http.get(f"/api/v1/ous/{fraud_id}", headers=auth_headers), 404, "NotFound")


def test_unknown_account_is_404(http: TestClient, auth_headers: Headers) -> None:
    error = assert_envelope(
        http.get("/api/v1/accounts/nobody", headers=auth_headers), 404, "NotFound"
    )
    assert "nobody" in error["message"]


def test_organization(http: TestClient, auth_headers: Headers) -> None:
    organization = http.get("/api/v1/organization", headers=auth_headers).json()
    assert organization["name"] == "main"
    assert organization["krn"] == "krn:ketch::organization/main"


def test_account_creation_is_audited_under_the_new_account(
    http: TestClient, auth_headers: Headers
) -> None:
    assert _account(http, auth_headers, "fraud-dev").status_code == 201
    events = http.get(
        "/api/v1/audit/events", params={"action": "CreateAccount"}, headers=auth_headers
    ).json()["items"]
    assert [(e["account"], e["resource"], e["outcome"]) for e in events] == [
        ("fraud-dev", "krn:ketch::account/fraud-dev", "success")
    ]
