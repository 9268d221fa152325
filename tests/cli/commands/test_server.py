"""`ketch init` and `ketch db upgrade` on a temporary KETCH_HOME."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from ketch.cli.main import app


def _env(home: Path, database_url: str | None = None) -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("KETCH_")}
    env["KETCH_HOME"] = str(home)
    if database_url:
        env["KETCH_DATABASE_URL"] = database_url
    return env


def test_db_upgrade_then_init_then_init_again(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "home"
    upgraded = runner.invoke(app, ["db", "upgrade"], env=_env(home))
    assert upgraded.exit_code == 0, upgraded.output
    assert "upgraded from empty" in upgraded.output
    again = runner.invoke(app, ["db", "upgrade"], env=_env(home))
    assert again.exit_code == 0, again.output
    assert "already at revision" in again.output

    first = runner.invoke(app, ["init", "--org-name", "acme"], env=_env(home))
    assert first.exit_code == 0, first.output
    admin = json.loads((home / "initial-admin.json").read_text())
    assert admin["organization"] == "acme"
    assert admin["password"] in first.output  # shown once, at creation
    assert stat.S_IMODE(os.stat(home / "initial-admin.json").st_mode) == 0o600
    credentials = json.loads((home / "credentials.json").read_text())
    assert credentials["token"] == admin["token"]
    assert stat.S_IMODE(os.stat(home / "credentials.json").st_mode) == 0o600

    second = runner.invoke(app, ["init"], env=_env(home))
    assert second.exit_code == 0
    assert "already exists" in second.output
    assert admin["password"] not in second.output


def test_init_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    result = CliRunner().invoke(app, ["init"], env=_env(tmp_path / "home", postgres_url))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "home" / "ketch.db").exists()


def test_invalid_configuration_is_a_clear_error(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    env["KETCH_SERVER__PORT"] = "not-a-port"
    result = CliRunner().invoke(app, ["init"], env=env)
    assert result.exit_code == 2
    assert "invalid configuration" in result.output
