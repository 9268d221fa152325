"""KetchSettings: one typed tree of configuration, read once.

Sources, lowest priority first: defaults, ``$KETCH_HOME/ketch.toml``, then ``KETCH_*``
environment variables (nested keys with ``__``, e.g. ``KETCH_SERVER__PORT=8080``). This
is the only module that reads ``os.environ``; everything else receives settings.
"""

from __future__ import annotations

import os
import tomllib
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ketch.core.errors import InvalidInput
from ketch.core.instances import INSTANCE_TYPES
from ketch.core.krn import validate_name

DEFAULT_PORT = 8765
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def default_home() -> Path:
    """``$KETCH_HOME`` or ``~/.ketch``."""
    return Path(os.environ.get("KETCH_HOME") or Path.home() / ".ketch").expanduser()


class ServerSettings(BaseModel):
    """How the API server listens and what it accepts."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    allowed_hosts: list[str] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Host header values accepted (DNS-rebinding defence); '*' accepts any.",
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    public_url: str | None = None
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description="CIDRs of reverse proxies whose X-Forwarded-For is believed; none by default.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_ranges(cls, value: object) -> object:
        """Checked (and parsed, once) when settings load; host bits are allowed."""
        if not isinstance(value, list):
            return value
        try:
            return [ip_network(str(v), strict=False) for v in value]
        except ValueError as exc:
            raise ValueError(f"server.trusted_proxies: {exc}") from None


class DatabaseSettings(BaseModel):
    """The metadata store."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; default is SQLite at $KETCH_HOME/ketch.db"
    )
    busy_timeout_ms: int = Field(10_000, ge=0)
    pool_size: int = Field(10, ge=1)


class AuthSettings(BaseModel):
    """Sign-in and API tokens."""

    model_config = ConfigDict(extra="forbid")

    token_ttl_days: int = Field(30, ge=1, le=3650)


class AuditSettings(BaseModel):
    """The audit trail's signed digests."""

    model_config = ConfigDict(extra="forbid")

    digest_interval_seconds: int = Field(
        300, ge=1, description="A signed digest is written this often, also when idle."
    )
    signing_key_path: Path | None = Field(
        None,
        description="Ed25519 private key (PEM, mode 0600), outside the database; "
        "default $KETCH_HOME/audit/signing-key.pem, generated on first use.",
    )


class S3StorageSettings(BaseModel):
    """An S3-compatible bucket holding artifacts; each account gets ``<prefix>/<account>/``."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field("", max_length=512, description="Folder inside the bucket")
    endpoint: str | None = Field(None, description="e.g. http://127.0.0.1:9000 for MinIO")
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    allow_http: bool = Field(False, description="Allow a plain-HTTP endpoint (tests, loopback)")

    @field_validator("prefix")
    @classmethod
    def _relative_prefix(cls, value: str) -> str:
        if ".." in value.split("/") or "\\" in value:
            raise ValueError("artifacts s3 prefix must be a plain relative folder")
        return value.strip("/")


class AccountStorageSettings(BaseModel):
    """Where one account's artifacts live, when not where the organisation's do."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "s3"]
    s3: S3StorageSettings | None = None

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> AccountStorageSettings:
        if self.backend == "s3" and self.s3 is None:
            raise ValueError("backend 's3' needs an [s3] table with at least a bucket")
        return self


class ArtifactSettings(BaseModel):
    """The artifact store: a local folder by default, or an S3-compatible bucket.

    ``accounts`` overrides the organisation-wide choice for single accounts
    (``[artifacts.accounts.fraud-prod] backend = "s3"``).
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "s3"] = "local"
    local_root: Path | None = Field(None, description="default $KETCH_HOME/artifacts")
    s3: S3StorageSettings | None = None
    accounts: dict[str, AccountStorageSettings] = Field(default_factory=dict)
    max_object_bytes: int = Field(
        64 * 1024**3, ge=1, description="Largest object one upload may store (64 GiB)"
    )

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> ArtifactSettings:
        if self.backend == "s3" and self.s3 is None:
            raise ValueError("artifacts.backend is 's3', so [artifacts.s3] needs at least a bucket")
        return self


class RaySettings(BaseModel):
    """The Ray cluster jobs run on when ``jobs.executor`` is ``"ray"``.

    Without ``address`` the server starts a Ray head of its own on 127.0.0.1 (kept in
    ``<work_dir>/ray``, left running across server restarts like the attempts on it).
    Ray always runs with token authentication: the token is generated for the server's
    own head unless set, and must be set with ``address``.
    """

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None,
        description="host:port of an existing cluster's GCS (e.g. 10.0.0.5:6379); unset: "
        "a Ray head of the server's own on 127.0.0.1",
    )
    token: SecretStr | None = Field(
        None, description="The cluster's RAY_AUTH_MODE=token token (KETCH_JOBS__RAY__TOKEN)"
    )
    namespace: str = Field(
        "ketch",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        description="Ray namespace of the attempts' actors and records",
    )
    cpus: int | None = Field(None, ge=1, description="CPUs the server's own head offers")
    memory_mib: int | None = Field(
        None, ge=512, description="Memory the server's own head offers (MiB)"
    )
    gpus: int | None = Field(None, ge=0, description="GPUs the server's own head offers")

    @field_validator("address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if not value:
            return None
        host, _, port = value.rpartition(":")
        if not host or "/" in value or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                "the Ray address must be the GCS's host:port, e.g. 10.0.0.5:6379 "
                "(no scheme: ray:// client addresses are not supported)"
            )
        return value

    @model_validator(mode="after")
    def _token_for_a_cluster(self) -> RaySettings:
        token = self.token.get_secret_value() if self.token else ""
        if self.address and not token:
            raise ValueError(
                "jobs.ray.address is set, so jobs.ray.token is needed: ketch connects to "
                "Ray only with token authentication (RAY_AUTH_MODE=token)"
            )
        offered = {"cpus": self.cpus, "memory_mib": self.memory_mib, "gpus": self.gpus}
        if self.address and any(v is not None for v in offered.values()):
            raise ValueError(
                "jobs.ray.cpus, memory_mib and gpus size the server's own Ray head; with "
                "jobs.ray.address the cluster's nodes say what they offer"
            )
        return self


class JobSettings(BaseModel):
    """Running jobs: where, how many at once, and how long a controller's claim lasts."""

    model_config = ConfigDict(extra="forbid")

    executor: Literal["local", "ray"] = Field(
        "local", description="Where attempts run: local processes, or a Ray cluster ([jobs.ray])"
    )
    ray: RaySettings = Field(default_factory=RaySettings)
    work_dir: Path | None = Field(None, description="Job roots and logs; default $KETCH_HOME/jobs")
    per_account: int = Field(4, ge=1, le=10_000, description="Jobs one account runs at once")
    per_instance_type: dict[str, int] = Field(
        default_factory=dict, description="Capacity by instance type, e.g. {gpu.small = 1}"
    )
    default_per_instance_type: int = Field(2, ge=1, le=10_000)
    lease_seconds: int = Field(
        30, ge=2, le=3600, description="A dead controller's jobs are taken over after this"
    )
    environments_dir: Path | None = Field(
        None,
        description="Cached environments of jobs' requirements.txt; default <work_dir>/"
        "environments",
    )
    pip_args: list[str] = Field(
        default_factory=list,
        description="Added to every pip install of a requirements.txt, e.g. "
        '["--index-url", "https://mirror.example/simple"] or ["--no-index", "--find-links", '
        '"/srv/wheels"]',
    )
    pip_timeout_seconds: int = Field(
        1800, ge=10, le=86_400, description="Longest install of one requirements.txt"
    )
    environment_ttl_days: int = Field(
        30, ge=1, le=3650, description="An environment unused this long is removed"
    )
    prices: dict[str, float] = Field(
        default_factory=dict,
        description='Price per instance-hour by instance type, e.g. {"cpu.small" = 0.05}; '
        "a job's cost is its billable hours times this (none for a type not listed)",
    )

    @field_validator("prices", "per_instance_type")
    @classmethod
    def _types_exist(cls, value: dict[str, float]) -> dict[str, float]:
        """Each key an instance type, each value a finite number >= 0 (a misspelt type
        would otherwise be ignored without a word)."""
        for name, number in value.items():
            if name not in INSTANCE_TYPES:
                raise ValueError(f"{name!r} is not an instance type ({', '.join(INSTANCE_TYPES)})")
            if not 0 <= number < float("inf"):
                raise ValueError(f"the value for {name} must be a finite number >= 0")
        return value


class SsoSettings(BaseModel):
    """Single sign-on through an external OpenID Connect identity provider.

    Off while ``issuer`` is unset. The provider must list
    ``<redirect base>/api/v1/auth/sso/callback`` among the client's redirect URIs.
    """

    model_config = ConfigDict(extra="forbid")

    issuer: str | None = Field(
        None, description="The provider's issuer URL (https; plain http only on loopback)."
    )
    client_id: str = ""
    client_secret: SecretStr | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email", "groups"])
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    group_mapping: dict[str, str] = Field(
        default_factory=dict, description="Provider group -> ketch group."
    )
    unmapped_groups: Literal["drop", "same-name"] = Field(
        "drop", description="What becomes of a provider group missing from group_mapping."
    )
    redirect_base: str | None = Field(
        None,
        description="Base URL the provider sends the browser back to; default "
        "server.public_url, else the URL the sign-in was started on.",
    )
    login_ttl_seconds: int = Field(600, ge=30, le=3600)

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        loopback = url.hostname in LOOPBACK_HOSTS
        if not (url.scheme == "https" or (url.scheme == "http" and loopback)) or (
            not url.hostname or url.query or url.fragment
        ):
            raise ValueError(
                "the issuer must be an https URL without query or fragment "
                "(plain http only on loopback)"
            )
        return value.rstrip("/")

    @field_validator("redirect_base")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ValueError("the redirect base must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @field_validator("group_mapping")
    @classmethod
    def _group_names(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value.values():
            try:
                validate_name(target, kind="ketch group name")
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _client_registration(self) -> SsoSettings:
        secret = self.client_secret.get_secret_value() if self.client_secret else ""
        if self.issuer and not (self.client_id and secret):
            raise ValueError("sso.issuer is set, so sso.client_id and sso.client_secret are needed")
        return self


class KetchSettings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="KETCH_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    home: Path = Field(default_factory=default_home)
    database_url: SecretStr | None = Field(
        None, description="Shortcut for database.url (KETCH_DATABASE_URL)"
    )
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    sso: SsoSettings = Field(default_factory=SsoSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log level {value!r} is unknown; use one of {', '.join(LOG_LEVELS)}")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = default_home() / "ketch.toml"
        try:
            toml_settings = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        except tomllib.TOMLDecodeError as exc:
            # A ValidationError like any other bad value, naming the file and the spot.
            error = PydanticCustomError(
                "toml_syntax",
                "{file} is not valid TOML: {error}",
                {"file": str(toml_file), "error": str(exc)},
            )
            detail = InitErrorDetails(type=error, loc=("ketch.toml",), input=str(toml_file))
            raise ValidationError.from_exception_data(settings_cls.__name__, [detail]) from exc
        return (init_settings, env_settings, toml_settings)

    def resolved_database_url(self) -> str:
        """The database URL in force: explicit setting, else SQLite under ``home``."""
        for candidate in (self.database_url, self.database.url):
            if candidate is not None and candidate.get_secret_value():
                return candidate.get_secret_value()
        return f"sqlite:///{self.home / 'ketch.db'}"

    def resolved_jobs_dir(self) -> Path:
        """The folder of the job runner's state (attempts, roots and logs, environments):
        ``jobs.work_dir``, else ``$KETCH_HOME/jobs``."""
        return self.jobs.work_dir or self.home / "jobs"


def load_settings(**overrides: Any) -> KetchSettings:
    """Build settings from the environment and ``ketch.toml``, with explicit overrides on top."""
    return KetchSettings(**overrides)
