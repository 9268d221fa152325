"""`ketch login` and `ketch whoami`."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

import ketch
from ketch.cli.main import app
from support.settings import TEST_HOST

Run = Callable[..., Result]


def test_whoami_for_people(run: Run) -> None:
    result = run("whoami")
    assert result.exit_code == 0, result.output
    line = " ".join(result.stdout.split())  # Rich wraps at the terminal width
    assert line.startswith("admin (krn:ketch::user/admin), organisation admin of organisation ")
    assert f"at http://{TEST_HOST} groups: (none)" in line
    assert line.endswith("OrgAdmin on ou (root) (via user)")


def test_whoami_as_json(run: Run, client: ketch.Client) -> None:
    result = run("whoami", "--output", "json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    me = json.loads(result.stdout)
    assert me["principal"]["name"] == "admin"
    assert me["is_org_admin"] is True
    assert me["organization"] == client.organization().name


def test_whoami_with_a_bad_token_fails_on_stderr(http: TestClient) -> None:
    stranger = ketch.Client(url=f"http://{TEST_HOST}", token="ketch_bad_token", http_client=http)
    result = CliRunner().invoke(app, ["whoami", "-o", "json"], obj=lambda: stranger)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert "[Unauthenticated, request req-" in result.stderr


def test_login_stores_a_working_token(
    run: Run, admin_credentials: dict[str, str], ketch_home: Path, http: TestClient
) -> None:
    result = run(
        "login",
        "--username",
        admin_credentials["username"],
        "--password",
        admin_credentials["password"],
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"Signed in to http://{TEST_HOST} as admin" in result.stderr
    path = ketch_home / "credentials.json"
    assert str(path) in result.stderr.replace("\n", "")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["url"] == f"http://{TEST_HOST}"
    assert stored["token"] not in result.output
    assert admin_credentials["password"] not in result.output
    assert ketch.Client(http_client=http).whoami().principal.name == "admin"


def test_login_prompts_for_a_hidden_password(
    run: Run, admin_credentials: dict[str, str], ketch_home: Path
) -> None:
    answers = f"{admin_credentials['username']}\n{admin_credentials['password']}\n"

    result = run("login", input=answers)

    assert result.exit_code == 0, result.output
    assert "Username" in result.output and "Password" in result.output
    assert admin_credentials["password"] not in result.output
    assert (ketch_home / "credentials.json").exists()


def test_login_with_a_wrong_password_stores_nothing(
    run: Run, admin_credentials: dict[str, str], ketch_home: Path
) -> None:
    result = run("login", "--username", admin_credentials["username"], "--password", "wrong")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert "[Unauthenticated" in result.stderr
    assert not (ketch_home / "credentials.json").exists()


def test_login_to_an_unreachable_server_names_it(ketch_home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = CliRunner().invoke(
        app, ["login", "--url", url, "--username", "admin", "--password", "secret"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot reach the ketch server at")
    assert url in result.stderr
    assert not (ketch_home / "credentials.json").exists()
