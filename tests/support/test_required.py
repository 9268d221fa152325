"""A missing real component fails where it is required and is skipped elsewhere."""

from __future__ import annotations

import pytest

from support.required import skip_or_fail


def test_required_components_fail_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("KETCH_TEST_OIDC", "required")
    with pytest.raises(pytest.fail.Exception, match="missing"):
        skip_or_fail("OIDC", "provider missing")
    monkeypatch.delenv("KETCH_TEST_OIDC")
    with pytest.raises(pytest.skip.Exception, match="missing"):
        skip_or_fail("OIDC", "provider missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        skip_or_fail("POSTGRES", "binaries missing")
