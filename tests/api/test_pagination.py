"""next_token encoding: opaque, bound to its list, refused when forged."""

from __future__ import annotations

import pytest

from ketch.api.pagination import decode_token, encode_token, page_of
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


def test_pages_of_a_list_in_collation_order_still_visit_every_item() -> None:
    """A database with a linguistic collation returns mixed-case names as below; the pages
    must still cover each exactly once (the token compares code points)."""
    items = ["AccountAdmin", "billing", "DataScientist", "MLEngineer", "viewer", "Zeta"]
    seen: list[str] = []
    token = None
    while True:
        page, token = page_of("sets", items, str, max_results=2, next_token=token)
        seen.extend(page)
        if token is None:
            break
    assert seen == sorted(items)
