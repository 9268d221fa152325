"""Where the CLI keeps its server URL and token, and how the SDK finds them.

Resolution order for :class:`ketch.Client` with no arguments: ``KETCH_URL`` /
``KETCH_TOKEN``, then ``$KETCH_HOME/credentials.json`` (written by ``ketch login``
and by the first start of a local server), then the default local URL.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ketch.core.files import write_private_json
from ketch.core.settings import DEFAULT_PORT

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    url: str
    token: str | None


def ketch_home() -> Path:
    return Path(os.environ.get("KETCH_HOME") or Path.home() / ".ketch").expanduser()


def credentials_path() -> Path:
    return ketch_home() / CREDENTIALS_FILE


def load_stored() -> Credentials | None:
    """The stored credentials, or ``None`` when there are none (or they are unreadable)."""
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    token = data.get("token")
    return Credentials(url=data["url"], token=token if isinstance(token, str) else None)


def resolve(url: str | None = None, token: str | None = None) -> Credentials:
    """Fill what the caller did not give from the environment, then the stored file."""
    stored = load_stored()
    resolved_url = url or os.environ.get("KETCH_URL") or (stored.url if stored else DEFAULT_URL)
    resolved_url = resolved_url.rstrip("/")
    resolved_token = token or os.environ.get("KETCH_TOKEN")
    if resolved_token is None and stored is not None and stored.url.rstrip("/") == resolved_url:
        resolved_token = stored.token
    return Credentials(url=resolved_url, token=resolved_token)


def save_credentials(*, url: str, token: str) -> Path:
    """Store the URL and token for later CLI and SDK use (atomic, mode 0600)."""
    path = credentials_path()
    write_private_json(path, {"url": url.rstrip("/"), "token": token})
    return path
