"""``ketch.artifacts``: the module-level calls, their default client, a light import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ketch


@pytest.fixture
def account(client: ketch.Client) -> str:
    client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True)
    return "fraud-dev"


def test_the_module_calls_round_trip(client: ketch.Client, account: str, tmp_path: Path) -> None:
    from ketch import artifacts

    (tmp_path / "up" / "sub").mkdir(parents=True)
    (tmp_path / "up" / "sub" / "a.txt").write_text("a")
    (tmp_path / "up" / "b.txt").write_text("b")

    stored = artifacts.upload(tmp_path / "up", "ketch://fraud-dev/d/", client=client)
    listed = ketch.artifacts.list("ketch://fraud-dev/d/", client=client)
    described = ketch.artifacts.describe("ketch://fraud-dev/d/b.txt", client=client)
    fetched = ketch.artifacts.download("ketch://fraud-dev/d/", tmp_path / "down", client=client)
    ketch.artifacts.delete("ketch://fraud-dev/d/b.txt", client=client)

    assert [a.key for a in stored] == ["d/b.txt", "d/sub/a.txt"]
    assert [a.key for a in listed] == [a.key for a in stored] == [a.key for a in fetched]
    assert described.sha256 == stored[0].sha256
    assert (tmp_path / "down" / "sub" / "a.txt").read_text() == "a"
    assert [a.key for a in ketch.artifacts.list("ketch://fraud-dev/", client=client)] == [
        "d/sub/a.txt"
    ]
    assert not client._http.is_closed  # a caller's client is left open


def test_without_a_client_the_default_one_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Port 9 (discard) on the loopback refuses at once: the call went where KETCH_URL says.
    monkeypatch.setenv("KETCH_URL", "http://127.0.0.1:9")
    with pytest.raises(ketch.BackendUnavailable, match=r"127\.0\.0\.1:9"):
        ketch.artifacts.list("ketch://fraud-dev/")


def test_importing_ketch_artifacts_loads_no_server_code() -> None:
    heavy = ["sqlalchemy", "fastapi", "starlette", "alembic", "uvicorn", "ketch.artifact_store"]
    code = (
        "import sys, ketch\n"
        "ketch.artifacts.upload, ketch.artifacts.download\n"
        "from ketch import artifacts\n"
        "assert artifacts is ketch.artifacts\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
