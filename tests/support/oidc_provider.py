"""A real OpenID Connect provider on loopback, for the SSO tests.

``OidcProvider`` runs ``tests/support/oidc/provider.mjs`` (the npm package
``oidc-provider``, installed by ``scripts/ensure_oidc_provider.sh``) with Node.js in its
own session on ``127.0.0.1`` and a free port the provider picks itself; it reads the
issuer URL from the first line the script prints, and stops the process by its pid.

:meth:`OidcProvider.browser_login` plays the browser: it opens an authorisation URL,
signs a test account in on the provider's (non-interactive) login form and returns the
query parameters the provider sends to the redirect URI, which is never contacted.

Test accounts (see ``provider.mjs``): ``alice`` (groups ``ml-engineers``, ``admins``),
``bob`` (``data-scientists``), ``carol`` (none). :meth:`OidcProvider.set_account`
changes an account's claims for the next login.

Usage::

    with OidcProvider(redirect_uris=["http://127.0.0.1:9/callback"]) as idp:
        params = idp.browser_login(authorization_url, "alice")

In a fixture, :func:`running_provider` does the same after checking that Node.js and the
provider are installed: without them the test fails in CI (or with
``KETCH_TEST_OIDC=required``) and is skipped elsewhere.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

from support.processes import ChildProcessHelper, spawn, stop_process, tail
from support.required import skip_or_fail

__all__ = ["PROVIDER_DIR", "OidcProvider", "OidcProviderStartError", "running_provider"]

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "ketch"
CLIENT_SECRET = "ketch-test-secret"  # a throwaway provider's test client
_MAX_REDIRECTS = 20


class OidcProviderStartError(RuntimeError):
    """Node.js or the provider's npm packages are missing, or the provider did not start."""


class OidcProvider(ChildProcessHelper):
    """One ``oidc-provider`` process: ``start()``, use ``issuer``, then ``stop()``."""

    def __init__(
        self,
        *,
        redirect_uris: list[str],
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.redirect_uris = list(redirect_uris)
        self.client_id = client_id
        self.client_secret = client_secret
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._issuer: str | None = None
        self._log_path: Path | None = None

    # -- discovery -------------------------------------------------------------------

    @staticmethod
    def node() -> str | None:
        return shutil.which("node")

    @classmethod
    def available(cls) -> bool:
        """True if Node.js and the provider's npm packages are installed."""
        return cls.node() is not None and (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir()

    # -- state -----------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        if self._issuer is None:
            raise RuntimeError("the provider is not started")
        return self._issuer

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the provider is not started")
        return self._process.pid

    def log_tail(self) -> str:
        """The last lines the provider wrote to stderr."""
        return tail(self._log_path)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self._process is not None:
            raise RuntimeError("the provider is already started")
        node = self.node()
        if node is None or not self.available():
            raise OidcProviderStartError(
                "Node.js or the oidc-provider npm package is missing; "
                "run scripts/ensure_oidc_provider.sh"
            )
        env = {
            **os.environ,
            "OIDC_CLIENT_ID": self.client_id,
            "OIDC_CLIENT_SECRET": self.client_secret,
            "OIDC_REDIRECT_URIS": ",".join(self.redirect_uris),
            "NODE_ENV": "test",
        }
        fd, log_name = tempfile.mkstemp(prefix="ketch-oidc-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log_name)
        atexit.register(self.stop)
        self._process = spawn(
            [node, str(PROVIDER_DIR / "provider.mjs")],
            log=self._log_path,
            stdout=subprocess.PIPE,
            cwd=PROVIDER_DIR,
            env=env,
        )
        try:
            self._issuer = self._read_ready_line()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_ready_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if not line or not line[0].strip():
            raise OidcProviderStartError(
                f"the OIDC provider did not start within {self.startup_timeout:.0f} s:\n"
                f"{self.log_tail()}"
            )
        try:
            return str(json.loads(line[0])["issuer"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OidcProviderStartError(
                f"the OIDC provider printed {line[0]!r}, not its issuer:\n{self.log_tail()}"
            ) from exc

    def stop(self) -> None:
        """Stop the provider (SIGTERM, then SIGKILL to its group). Safe to call twice."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        self._issuer = None
        if process is not None:
            stop_process(process, timeout=self.stop_timeout)
            if process.stdout is not None:
                process.stdout.close()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    # -- test helpers ----------------------------------------------------------------

    def set_account(self, account: str, **claims: Any) -> dict[str, Any]:
        """Change a test account's claims (``groups=[...]``, ``email=...``); creates it."""
        response = httpx.put(f"{self.issuer}/_test/accounts/{account}", json=claims)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def browser_login(self, authorization_url: str, account: str) -> dict[str, str]:
        """Sign ``account`` in and return the query the provider sends to the redirect URI.

        Follows redirects the way a browser does (with its own cookie jar), posts the
        login form when the provider asks for an interaction, and stops at the first
        redirect that leaves the provider. Fails if the provider answers with an error.
        """
        issuer_origin = urlsplit(self.issuer).netloc
        with httpx.Client(follow_redirects=False, timeout=10.0) as browser:
            response = browser.get(authorization_url)
            for _ in range(_MAX_REDIRECTS):
                if response.is_redirect:
                    target = urljoin(str(response.url), response.headers["location"])
                    if urlsplit(target).netloc != issuer_origin:
                        return dict(parse_qsl(urlsplit(target).query))
                    response = browser.get(target)
                elif response.status_code == 200 and "/interaction/" in response.url.path:
                    uid = response.url.path.rstrip("/").split("/")[-1]
                    response = browser.post(
                        f"{self.issuer}/interaction/{uid}/login", data={"login": account}
                    )
                else:
                    raise AssertionError(
                        f"the provider answered {response.status_code} at {response.url}:\n"
                        f"{response.text[:2000]}"
                    )
        raise AssertionError(f"more than {_MAX_REDIRECTS} redirects during the login")


@contextmanager
def running_provider(redirect_uris: list[str]) -> Iterator[OidcProvider]:
    """A started provider for a fixture; skips (or fails where required) without Node.js."""
    if not OidcProvider.available():
        skip_or_fail(
            "OIDC", "Node.js or oidc-provider is missing (run scripts/ensure_oidc_provider.sh)"
        )
    with OidcProvider(redirect_uris=redirect_uris) as provider:
        yield provider
