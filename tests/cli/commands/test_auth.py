"""`ketch login` (password and single sign-on) and `ketch whoami`.

The single sign-on tests run the real thing: a `ketch server` process and the CLI as a
subprocess, both on loopback, against a real OpenID provider (``support.oidc_provider``)
whose ``browser_login`` plays the browser on the URL the CLI prints.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

import ketch
from ketch.cli.main import app
from support.live import LiveServer
from support.oidc_provider import OidcProvider, running_provider
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


# -- single sign-on -------------------------------------------------------------------

SSO_TOML = """
[sso]
issuer = "{issuer}"
client_id = "{client_id}"
client_secret = "{client_secret}"

[sso.group_mapping]
ml-engineers = "ml-team"
admins = "platform-admins"
"""


@pytest.fixture(scope="module")
def sso_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, OidcProvider]]:
    """A `ketch server` process with single sign-on through a provider on loopback."""
    server = LiveServer(home=tmp_path_factory.mktemp("sso-server"))
    with running_provider([f"{server.url}/api/v1/auth/sso/callback"]) as idp:
        (server.home / "ketch.toml").write_text(
            SSO_TOML.format(
                issuer=idp.issuer, client_id=idp.client_id, client_secret=idp.client_secret
            )
        )
        server.start()
        try:
            yield server, idp
        finally:
            server.stop()


class SsoLogin:
    """`ketch login --sso` as a subprocess; its stderr lines arrive on a queue as written."""

    def __init__(self, server: LiveServer, home: Path, *args: str, browser: str | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KETCH_")}
        env["KETCH_HOME"] = str(home)
        env.pop("BROWSER", None)
        if browser is not None:
            env["BROWSER"] = browser
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ketch", "login", "--sso", "--url", server.url, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            self.lines.put(line)

    def printed_url(self, prefix: str, timeout: float = 30.0) -> str:
        """The first line of stderr that starts with ``prefix``."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no URL on stderr: {''.join(self.stderr)}") from None
            if line.startswith(prefix):
                return line.strip()

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """Exit code, stdout and stderr, once the process has ended by itself."""
        assert self.process.stdout is not None
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.process.returncode, self.process.stdout.read(), "".join(self.stderr)

    def __enter__(self) -> SsoLogin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Kill the CLI if a failed test left it waiting."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def _deliver(server: LiveServer, params: dict[str, str]) -> tuple[httpx.Response, str]:
    """Be the browser coming back from the provider: the callback, then the CLI listener.

    Returns the listener's page and the URL it was reached on.
    """
    back = httpx.get(f"{server.url}/api/v1/auth/sso/callback", params=params)
    assert back.status_code == 302, back.text
    listener = back.headers["location"]
    assert listener.startswith("http://127.0.0.1:")
    return httpx.get(listener), listener


@pytest.mark.live
def test_login_with_sso_stores_a_working_token(
    sso_server: tuple[LiveServer, OidcProvider], ketch_home: Path
) -> None:
    server, idp = sso_server
    with SsoLogin(server, ketch_home, "--no-browser", "--timeout", "60") as login:
        url = login.printed_url(idp.issuer)
        params = idp.browser_login(url, "alice")
        page, listener = _deliver(server, params)
        assert page.status_code == 200 and "signed in" in page.text
        code, stdout, stderr = login.finish()

    assert code == 0, stderr
    assert stdout == ""
    assert "Open this URL in a browser to sign in:" in stderr
    assert f"Signed in to {server.url} as alice" in stderr
    path = ketch_home / "credentials.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["url"] == server.url
    assert stored["token"] not in stderr and stored["token"] not in page.text
    me = ketch.Client(url=server.url, token=stored["token"]).whoami()
    assert me.principal.name == "alice"
    assert me.groups == ["ml-team", "platform-admins"]
    exchange_code = listener.split("code=", 1)[1]
    secrets = [stored["token"], exchange_code, params["code"]]
    assert [s for s in secrets if s in stderr] == []
    log = server.log_tail(10_000)
    assert "signed in through" in log  # the log is there, and holds none of the secrets
    assert [s for s in [*secrets, params["state"]] if s in log] == []


@pytest.mark.live
def test_login_with_sso_opens_the_browser(
    sso_server: tuple[LiveServer, OidcProvider], ketch_home: Path, tmp_path: Path
) -> None:
    """Without --no-browser the URL goes to the browser (here a script that writes it)."""
    server, idp = sso_server
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.py"
    fake_browser.write_text(
        f"import sys, pathlib\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    )
    login = SsoLogin(
        server, ketch_home, "--timeout", "60", browser=f"{sys.executable} {fake_browser} %s"
    )
    with login:
        printed = login.printed_url(idp.issuer)
        assert opened.read_text() == printed
        page, _ = _deliver(server, idp.browser_login(printed, "bob"))
        assert "signed in" in page.text
        code, _, stderr = login.finish()
    assert code == 0, stderr
    assert "Your browser was opened" in stderr
    assert "as bob" in stderr


@pytest.mark.live
def test_login_with_sso_reports_a_refusal_and_stores_nothing(
    sso_server: tuple[LiveServer, OidcProvider], ketch_home: Path
) -> None:
    server, idp = sso_server
    with SsoLogin(server, ketch_home, "--no-browser", "--timeout", "60") as login:
        url = login.printed_url(idp.issuer)
        # prompt=none and no session at the provider: it refuses with login_required.
        params = idp.browser_login(url + "&prompt=none", "alice")
        page, _ = _deliver(server, params)
        assert "Sign-in failed" in page.text
        code, _, stderr = login.finish()
    assert code == 1
    assert "Error: the identity provider refused the sign-in: " in stderr
    assert "[Unauthenticated]" in stderr
    assert not (ketch_home / "credentials.json").exists()


@pytest.mark.live
def test_login_with_sso_gives_up_after_the_timeout(
    sso_server: tuple[LiveServer, OidcProvider], ketch_home: Path
) -> None:
    server, _ = sso_server
    with SsoLogin(server, ketch_home, "--no-browser", "--timeout", "1") as login:
        code, _, stderr = login.finish()
    assert code == 1
    assert "Waiting up to 1 s" in stderr
    assert "Error: no sign-in arrived within 1 s" in stderr
    assert not (ketch_home / "credentials.json").exists()


def test_login_with_sso_on_a_server_without_it_says_so(run: Run, ketch_home: Path) -> None:
    result = run("login", "--sso", "--no-browser")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: single sign-on is not configured")
    assert "[NotFound" in result.stderr
    assert not (ketch_home / "credentials.json").exists()


def test_login_with_sso_and_a_password_is_a_usage_error(run: Run) -> None:
    result = run("login", "--sso", "--username", "admin")
    assert result.exit_code == 2
    assert "--sso signs in through a browser" in result.stderr
