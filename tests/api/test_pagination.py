"""next_token encoding: opaque, bound to its list, refused when forged."""

from __future__ import annotations

import pytest

from ketch.api.pagination import decode_token, encode_token
from ketch.core.errors import InvalidInput


def test_round_trip() -> None:
    token = encode_token("accounts", "fraud-dev")
    assert token is not None
    assert decode_token("accounts", token) == "fraud-dev"


def test_last_page_has_no_token() -> None:
    assert encode_token("accounts", None) is None
    assert decode_token("accounts", None) is None


@pytest.mark.parametrize("token", ["", "!!!", "bm90LWpzb24", "eyJsIjoib3VzIiwiayI6IngifQ"])
def test_forged_or_foreign_tokens_are_invalid_input(token: str) -> None:
    with pytest.raises(InvalidInput, match="next_token"):
        decode_token("accounts", token)
