"""Assertions on the error envelope shared by API tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the one error envelope with ``status`` and ``code``; returns its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error
