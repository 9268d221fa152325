"""The client address: the socket peer, or X-Forwarded-For only behind trusted proxies."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_network

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from ketch.api.deps import client_address
from support.envelope import assert_envelope

CHUNK = 1024 * 1024

PROXIES = [ip_network("10.0.0.0/8")]


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "expected"),
    [
        ("203.0.113.7", None, PROXIES, "203.0.113.7"),  # no proxy in between
        ("203.0.113.7", "1.2.3.4", PROXIES, "203.0.113.7"),  # untrusted peer: header ignored
        ("10.1.1.1", "198.51.100.9", PROXIES, "198.51.100.9"),  # behind a trusted proxy
        ("10.1.1.1", "6.6.6.6, 198.51.100.9, 10.2.2.2", PROXIES, "198.51.100.9"),  # spoofed left
        ("10.1.1.1", "198.51.100.9", [], "10.1.1.1"),  # no proxies configured
        ("10.1.1.1", "10.3.3.3", PROXIES, "10.1.1.1"),  # nothing but proxies: the peer
    ],
)
def test_client_address(peer: str, forwarded: str | None, proxies: list, expected: str) -> None:  # type: ignore[type-arg]
    assert client_address(_request(peer, forwarded), proxies) == expected


@pytest.mark.parametrize("token", ["junk", None])
def test_a_body_is_not_read_for_a_caller_who_is_not_signed_in(
    http: TestClient, token: str | None
) -> None:
    """An upload route admits GiB-sized bodies; an unauthenticated request labelled JSON
    must be answered 401 without the server reading (and holding) what it sends."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 64 MiB on offer
            sent += CHUNK
            yield b"x" * CHUNK

    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = http.put("/api/v1/accounts/any/artifacts/k.json", content=body(), headers=headers)

    assert_envelope(response, 401, "Unauthenticated")
    assert sent <= 2 * CHUNK, f"{sent // CHUNK} MiB were read"
