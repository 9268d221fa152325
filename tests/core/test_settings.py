"""KetchSettings: defaults, then ``$KETCH_HOME/ketch.toml``, then ``KETCH_*`` variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ketch.core.settings import (
    DEFAULT_PORT,
    LOOPBACK_HOSTS,
    JobSettings,
    KetchSettings,
    default_home,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KETCH_* variables from the caller's shell, and HOME in a temporary folder.

    Returns the default home (``~/.ketch``), which has no ``ketch.toml``.
    """
    for name in list(os.environ):
        if name.startswith("KETCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path / "user" / ".ketch"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """KETCH_HOME set to an empty folder (where ketch.toml is read from)."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("KETCH_HOME", str(folder))
    return folder


def _toml(home: Path, text: str) -> None:
    (home / "ketch.toml").write_text(text)


def _errors(caught: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


# -- defaults and explicit values ------------------------------------------------------


def test_defaults(clean_environment: Path) -> None:
    settings = KetchSettings()
    assert settings.home == clean_environment == default_home()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == DEFAULT_PORT == 8765
    assert settings.server.allowed_hosts == list(LOOPBACK_HOSTS)
    assert settings.server.max_body_bytes == 1024 * 1024
    assert settings.server.public_url is None
    assert settings.database_url is None
    assert settings.database.url is None
    assert settings.database.busy_timeout_ms == 10_000
    assert settings.database.pool_size == 10
    assert settings.auth.token_ttl_days == 30
    assert settings.log_level == "INFO"
    assert settings.resolved_database_url() == f"sqlite:///{clean_environment / 'ketch.db'}"


def test_explicit_values(tmp_path: Path) -> None:
    settings = KetchSettings(
        home=tmp_path / "h",
        server={"port": 9000, "allowed_hosts": ["*"]},
        database={"pool_size": 3},
        auth={"token_ttl_days": 7},
        log_level="warning",
    )
    assert settings.home == tmp_path / "h"
    assert settings.server.port == 9000
    assert settings.server.host == "127.0.0.1"
    assert settings.server.allowed_hosts == ["*"]
    assert settings.database.pool_size == 3
    assert settings.auth.token_ttl_days == 7
    assert settings.log_level == "WARNING"
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'h' / 'ketch.db'}"


def test_default_lists_are_not_shared(tmp_path: Path) -> None:
    first, second = KetchSettings(home=tmp_path), KetchSettings(home=tmp_path)
    first.server.allowed_hosts.append("example.com")
    assert second.server.allowed_hosts == list(LOOPBACK_HOSTS)


def test_database_url_shortcut_wins_and_stays_secret(tmp_path: Path) -> None:
    nested = KetchSettings(home=tmp_path, database={"url": "postgresql://u:pw@db/nested"})
    assert nested.resolved_database_url() == "postgresql://u:pw@db/nested"
    both = KetchSettings(
        home=tmp_path,
        database_url="postgresql://u:pw@db/shortcut",
        database={"url": "postgresql://u:pw@db/nested"},
    )
    assert both.resolved_database_url() == "postgresql://u:pw@db/shortcut"
    assert "pw" not in repr(both) and "pw" not in str(both.model_dump())
    empty = KetchSettings(home=tmp_path, database_url="")
    assert empty.resolved_database_url() == f"sqlite:///{tmp_path / 'ketch.db'}"


def test_load_settings_applies_overrides(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, log_level="DEBUG")
    assert settings.home == tmp_path
    assert settings.log_level == "DEBUG"


# -- ketch.toml and the environment ----------------------------------------------------


def test_ketch_home_sets_home_and_the_toml_location(home: Path) -> None:
    _toml(home, 'log_level = "ERROR"\n[server]\nport = 9001\n[auth]\ntoken_ttl_days = 2\n')
    settings = KetchSettings()
    assert settings.home == home
    assert settings.log_level == "ERROR"
    assert settings.server.port == 9001
    assert settings.server.host == "127.0.0.1"  # untouched keys keep their defaults
    assert settings.auth.token_ttl_days == 2


def test_environment_overrides_toml_key_by_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _toml(home, '[server]\nhost = "0.0.0.0"\nport = 9001\n[database]\npool_size = 4\n')
    monkeypatch.setenv("KETCH_SERVER__PORT", "9100")
    monkeypatch.setenv("KETCH_DATABASE__BUSY_TIMEOUT_MS", "250")
    monkeypatch.setenv("KETCH_LOG_LEVEL", "debug")
    settings = KetchSettings()
    assert settings.server.port == 9100  # environment beats toml
    assert settings.server.host == "0.0.0.0"  # toml beats defaults within the same table
    assert settings.database.pool_size == 4
    assert settings.database.busy_timeout_ms == 250
    assert settings.log_level == "DEBUG"


def test_environment_lists_and_secrets(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETCH_SERVER__ALLOWED_HOSTS", '["ketch.internal", "10.0.0.5"]')
    monkeypatch.setenv("KETCH_DATABASE_URL", "postgresql://ketch:pw@db/ketch")
    settings = KetchSettings()
    assert settings.server.allowed_hosts == ["ketch.internal", "10.0.0.5"]
    assert settings.resolved_database_url() == "postgresql://ketch:pw@db/ketch"


def test_explicit_values_override_environment_and_toml(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _toml(home, "[server]\nport = 9001\n")
    monkeypatch.setenv("KETCH_SERVER__PORT", "9100")
    assert load_settings(server={"port": 9200}).server.port == 9200


def test_unrelated_ketch_variables_are_ignored(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETCH_TEST_POSTGRES", "required")
    assert KetchSettings().server.port == DEFAULT_PORT


def test_missing_toml_is_fine(home: Path) -> None:
    assert not (home / "ketch.toml").exists()
    assert KetchSettings().server.port == DEFAULT_PORT


# -- invalid values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "location", "message"),
    [
        ("KETCH_SERVER__PORT", "eighty", "server.port", "valid integer"),
        ("KETCH_SERVER__PORT", "70000", "server.port", "less than or equal to 65535"),
        ("KETCH_SERVER__MAX_BODY_BYTES", "10", "server.max_body_bytes", "greater than or equal"),
        ("KETCH_DATABASE__POOL_SIZE", "0", "database.pool_size", "greater than or equal to 1"),
        ("KETCH_AUTH__TOKEN_TTL_DAYS", "0", "auth.token_ttl_days", "greater than or equal to 1"),
        ("KETCH_SERVER__NOPE", "1", "server.nope", "Extra inputs are not permitted"),
        ("KETCH_LOG_LEVEL", "loud", "log_level", "use one of DEBUG, INFO, WARNING"),
    ],
)
def test_invalid_environment_values_name_the_setting(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    location: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        KetchSettings()
    errors = _errors(caught)
    assert list(errors) == [location]
    assert message in errors[location]


@pytest.mark.parametrize(
    ("text", "location", "message"),
    [
        ("[server]\nport = -1\n", "server.port", "greater than or equal to 0"),
        ('[server]\nport = "x"\n', "server.port", "valid integer"),
        ("[server]\nbogus = 1\n", "server.bogus", "Extra inputs are not permitted"),
        ("bogus = 1\n", "bogus", "Extra inputs are not permitted"),
        ('log_level = "chatty"\n', "log_level", "use one of"),
    ],
)
def test_invalid_toml_values_name_the_setting(
    home: Path, text: str, location: str, message: str
) -> None:
    _toml(home, text)
    with pytest.raises(ValidationError) as caught:
        KetchSettings()
    errors = _errors(caught)
    assert list(errors) == [location]
    assert message in errors[location]


def test_toml_syntax_errors_name_the_file_and_position(home: Path) -> None:
    _toml(home, "[server]\nport = \n")
    with pytest.raises(ValidationError) as caught:
        KetchSettings()
    text = str(caught.value)
    assert str(home / "ketch.toml") in text
    assert "not valid TOML" in text
    assert "line 2" in text


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"server": {"port": 65536}}, "server.port"),
        ({"database": {"busy_timeout_ms": -1}}, "database.busy_timeout_ms"),
        ({"auth": {"token_ttl_days": 3651}}, "auth.token_ttl_days"),
        ({"serverr": {}}, "serverr"),
        ({"log_level": "verbose"}, "log_level"),
    ],
)
def test_invalid_explicit_values(tmp_path: Path, overrides: dict[str, Any], location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        KetchSettings(home=tmp_path, **overrides)
    assert list(_errors(caught)) == [location]


def test_sso_is_off_by_default(home: Path) -> None:
    sso = KetchSettings().sso
    assert not sso.enabled and sso.issuer is None


def test_sso_from_toml_and_environment_keeps_the_secret_secret(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _toml(
        home,
        '[sso]\nissuer = "https://idp.example/"\nclient_id = "ketch"\n'
        '[sso.group_mapping]\n"ml-engineers" = "ml-team"\n',
    )
    monkeypatch.setenv("KETCH_SSO__CLIENT_SECRET", "from-env-secret")
    monkeypatch.setenv("KETCH_SSO__SCOPES", '["openid", "groups"]')
    settings = KetchSettings()
    sso = settings.sso
    assert sso.enabled and sso.issuer == "https://idp.example"
    assert sso.group_mapping == {"ml-engineers": "ml-team"}
    assert sso.scopes == ["openid", "groups"]
    assert sso.client_secret is not None
    assert sso.client_secret.get_secret_value() == "from-env-secret"
    assert "from-env-secret" not in repr(settings) and "from-env-secret" not in str(settings)
    assert "from-env-secret" not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("sso", "location", "message"),
    [
        ({"issuer": "http://idp.example"}, "sso.issuer", "https URL"),
        ({"issuer": "https://idp.example?tenant=a"}, "sso.issuer", "https URL"),
        ({"issuer": "https://idp.example"}, "sso", "sso.client_id and sso.client_secret"),
        ({"issuer": "https://idp.example", "client_id": "k"}, "sso", "sso.client_secret"),
        ({"group_mapping": {"admins": "not a name!"}}, "sso.group_mapping", "ketch group name"),
        ({"redirect_base": "ftp://ketch.example"}, "sso.redirect_base", "http(s) URL"),
        ({"login_ttl_seconds": 5}, "sso.login_ttl_seconds", "greater than or equal"),
        ({"unmapped_groups": "keep"}, "sso.unmapped_groups", "'drop' or 'same-name'"),
        ({"issuer_url": "https://idp.example"}, "sso.issuer_url", "Extra inputs"),
    ],
)
def test_invalid_sso_settings_name_the_key(
    tmp_path: Path, sso: dict[str, Any], location: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        KetchSettings(home=tmp_path, sso=sso)
    errors = _errors(caught)
    assert list(errors) == [location]
    assert message in errors[location]


def test_a_loopback_issuer_may_use_plain_http(tmp_path: Path) -> None:
    sso = KetchSettings(
        home=tmp_path,
        sso={"issuer": "http://127.0.0.1:8080/", "client_id": "k", "client_secret": "s"},
    ).sso
    assert sso.issuer == "http://127.0.0.1:8080"


def test_trusted_proxies_are_checked_and_parsed_when_settings_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ipaddress import ip_network

    monkeypatch.setenv("KETCH_SERVER__TRUSTED_PROXIES", '["10.0.0.1/8", "fd00::/8"]')
    settings = load_settings(home=tmp_path / "h")
    assert settings.server.trusted_proxies == [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]
    with pytest.raises(ValidationError, match="trusted_proxies"):
        KetchSettings(home=tmp_path / "h", server={"trusted_proxies": ["not-a-range"]})


@pytest.mark.parametrize(
    ("jobs", "needle"),
    [
        ({"prices": {"cpu.huge": 1.0}}, "not an instance type"),
        ({"prices": {"cpu.small": -1.0}}, "finite number"),
        ({"per_instance_type": {"gpu.smal": 1}}, "not an instance type"),
    ],
)
def test_job_settings_keyed_by_instance_type_name_real_ones(
    jobs: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValidationError, match=needle):
        JobSettings.model_validate(jobs)
