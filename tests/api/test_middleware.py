"""Request ids, allowed hosts, body limits and security headers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from support.envelope import assert_envelope


def test_every_response_has_a_request_id(http: TestClient) -> None:
    first = http.get("/healthz").headers["x-request-id"]
    second = http.get("/healthz").headers["x-request-id"]
    assert first != second
    assert first.startswith("req-")


def test_a_harmless_request_id_is_kept_and_a_hostile_one_replaced(http: TestClient) -> None:
    kept = http.get("/healthz", headers={"X-Request-Id": "trace-12345678"})
    assert kept.headers["x-request-id"] == "trace-12345678"
    replaced = http.get("/healthz", headers={"X-Request-Id": "bad\nid <script>"})
    assert replaced.headers["x-request-id"].startswith("req-")


def test_security_headers(http: TestClient) -> None:
    headers = http.get("/healthz").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert "server" not in headers


def test_foreign_host_is_refused(http: TestClient) -> None:
    response = http.get("/healthz", headers={"Host": "evil.example.com"})
    error = assert_envelope(response, 400, "InvalidHost")
    assert "evil.example.com" in error["message"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_loopback_hosts_with_ports_are_allowed(http: TestClient) -> None:
    for host in ("127.0.0.1:8765", "localhost", "localhost:1"):
        assert http.get("/healthz", headers={"Host": host}).status_code == 200


def test_oversized_body_is_413_by_length(http: TestClient, auth_headers: dict[str, str]) -> None:
    body = b'{"id": "' + b"a" * (2 * 1024 * 1024) + b'", "stage": "dev"}'
    response = http.post(
        "/api/v1/accounts",
        content=body,
        headers={**auth_headers, "content-type": "application/json"},
    )
    assert_envelope(response, 413, "PayloadTooLarge")
    assert http.get("/api/v1/accounts", headers=auth_headers).json()["items"] == []


def test_oversized_streamed_body_is_413(http: TestClient, auth_headers: dict[str, str]) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    response = http.post(
        "/api/v1/accounts",
        content=chunks(),
        headers={**auth_headers, "content-type": "application/json"},
    )
    assert_envelope(response, 413, "PayloadTooLarge")


def test_bad_content_length_is_refused(http: TestClient) -> None:
    response = http.post(
        "/api/v1/auth/login",
        content=b"{}",
        headers={"content-length": "-1", "content-type": "application/json"},
    )
    assert response.status_code in (400, 413)
