"""Internal ids, request ids and secrets."""

from __future__ import annotations

import re
import uuid

import pytest

from ketch.core.ids import accept_request_id, new_id, new_request_id, new_secret


def test_new_id_is_32_hex_of_a_uuid4() -> None:
    value = new_id()
    assert re.fullmatch(r"[0-9a-f]{32}", value)
    assert uuid.UUID(hex=value).version == 4


def test_new_ids_are_unique() -> None:
    assert len({new_id() for _ in range(1000)}) == 1000


def test_new_request_id_format() -> None:
    value = new_request_id()
    assert re.fullmatch(r"req-[0-9a-f]{32}", value)
    assert new_request_id() != value


def test_generated_request_ids_are_accepted_back() -> None:
    value = new_request_id()
    assert accept_request_id(value) == value


@pytest.mark.parametrize(
    "candidate", ["abcdefgh", "x" * 128, "req-123.abc_DEF-9", "0123456789", "A.B_C-D.E"]
)
def test_harmless_request_ids_are_kept(candidate: str) -> None:
    assert accept_request_id(candidate) == candidate


@pytest.mark.parametrize(
    "candidate",
    [
        None,
        "",
        "abcdefg",  # 7 characters
        "x" * 129,
        "abc defgh",
        "abcdefgh\n",
        "abcdefgh\r\nX-Injected: 1",
        "\nabcdefgh",
        "abcdefgh\x00",
        'abc"defgh',
        "abcdefgh}",
        "abc/defgh",
        "\u00e9abcdefgh",
    ],
)
def test_unsafe_request_ids_are_replaced(candidate: str | None) -> None:
    replaced = accept_request_id(candidate)
    assert replaced != candidate
    assert re.fullmatch(r"req-[0-9a-f]{32}", replaced)


def test_new_secret_is_url_safe_with_the_requested_entropy() -> None:
    default = new_secret()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", default)  # 32 bytes in base64url
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", new_secret(16))
    assert len({new_secret() for _ in range(200)}) == 200
