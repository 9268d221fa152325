"""A real `ketch server` process driven by the SDK and the CLI over TCP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from ketch import Client, Conflict, NotFound, Unauthenticated
from support.live import LiveServer

pytestmark = pytest.mark.live


def ketch_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ketch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_first_start_bootstraps_with_private_credentials(live_server: LiveServer) -> None:
    admin_file = live_server.home / "initial-admin.json"
    assert stat.S_IMODE(os.stat(admin_file).st_mode) == 0o600
    password = live_server.admin_password()
    output = live_server.log_tail(1000)
    assert output.count(password) == 1, "the password is printed exactly once, at first start"
    assert not [line for line in output.splitlines() if line.startswith("{") and password in line]
    client = Client(url=live_server.url, token=live_server.admin_token())
    assert client.whoami().principal.name == "admin"


def test_sdk_round_trip(live_server: LiveServer) -> None:
    client = Client(url=live_server.url, token=live_server.admin_token())
    created = client.accounts.create(
        "fraud-dev", stage="dev", ou="teams/fraud", create_missing_ous=True, tags={"team": "fraud"}
    )
    assert created.ou_path == "teams/fraud"
    assert client.accounts.get("fraud-dev") == created
    with pytest.raises(Conflict):
        client.accounts.create("fraud-dev", stage="dev", ou="teams/fraud")
    with pytest.raises(NotFound) as missing:
        client.accounts.get("nobody")
    assert missing.value.request_id
    with pytest.raises(Unauthenticated):
        Client(url=live_server.url, token="ketch_AAAAAAAA_wrong").whoami()


def test_cli_accounts_acceptance(live_server: LiveServer) -> None:
    env = live_server.cli_env()
    refused = ketch_cli(
        ["accounts", "create", "fraud-dev", "--ou", "teams/fraud", "--stage", "dev"], env
    )
    assert refused.returncode != 0
    assert "teams" in refused.stderr and "--create-ous" in refused.stderr

    created = ketch_cli(
        [
            "accounts",
            "create",
            "fraud-dev",
            "--ou",
            "teams/fraud",
            "--stage",
            "dev",
            "--create-ous",
        ],
        env,
    )
    assert created.returncode == 0, created.stderr

    table = ketch_cli(["accounts", "ls"], env)
    assert table.returncode == 0 and "fraud-dev" in table.stdout

    as_json = ketch_cli(["accounts", "ls", "--output", "json"], env)
    assert as_json.returncode == 0, as_json.stderr
    accounts = json.loads(as_json.stdout)
    assert [a["id"] for a in accounts] == ["fraud-dev"]
    assert accounts[0]["ou_path"] == "teams/fraud"


def test_cli_login_stores_a_private_token(live_server: LiveServer) -> None:
    env = live_server.env()
    env.pop("KETCH_TOKEN", None)
    result = ketch_cli(
        [
            "login",
            "--url",
            live_server.url,
            "--username",
            "admin",
            "--password",
            live_server.admin_password(),
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    credentials = live_server.home / "credentials.json"
    assert stat.S_IMODE(os.stat(credentials).st_mode) == 0o600
    whoami = ketch_cli(["whoami", "--output", "json"], env)
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["principal"]["name"] == "admin"


def test_cli_reports_server_errors(live_server: LiveServer) -> None:
    result = ketch_cli(["accounts", "show", "nobody"], live_server.cli_env())
    assert result.returncode == 1
    assert "nobody" in result.stderr and "does not exist" in result.stderr
