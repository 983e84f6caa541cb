"""Typed settings from one TOML file plus the environment: the only reader of configuration.

Relative paths in the file are resolved against the file's own folder, so a configuration
travels with its mappings. Secrets never live in the file: a `*_env` key names an
environment variable and a `*_file` key names a file holding the secret.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.errors import ConfigError

ENV_CONFIG = "CONNECTOR_CONFIG"

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Section):
    """Where a secret comes from: an environment variable or a file, never the TOML itself."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_written_in(cls, value: Any) -> Any:
        """A secret written in the file is refused with what to write instead (and never
        repeated in the message)."""
        if isinstance(value, str | int | float):
            raise ValueError(
                'a secret is never written in the configuration file: use { env = "VARIABLE" }'
                ' or { file = "/path/to/secret" }'
            )
        return value

    def read(self, key: str) -> SecretStr | None:
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"{key}: environment variable {self.env} is not set")
            return SecretStr(value)
        if self.file:
            try:
                return SecretStr(self.file.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(f"{key}: cannot read secret file {self.file}: {exc}") from exc
        return None


class StateSettings(_Section):
    """The state store: SQLite (WAL) by default; PostgreSQL with a postgresql+psycopg URL."""

    url: str = "sqlite:///var/connector-state.db"
    password: SecretRef = SecretRef()
    retention_days: PositiveInt = 30
    #: How long `connector run` waits for another one to let the store go before it gives
    #: up: a restart right after a kill may find the old process not quite gone yet.
    worker_lock_wait_seconds: NonNegativeFloat = 30.0


class SourceSettings(_Section):
    """One local one-stop system."""

    name: str = "local"
    kind: Literal["sql"] = "sql"
    url: str
    password: SecretRef = SecretRef()
    mapping: FilePath
    page_size: PositiveInt = 500


class TlsSettings(_Section):
    verify: bool = True
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


class TimeoutSettings(_Section):
    connect: PositiveFloat = 5.0
    read: PositiveFloat = 30.0
    write: PositiveFloat = 30.0
    pool: PositiveFloat = 10.0
    total: PositiveFloat = 60.0  # deadline for one request, whatever the server trickles


class RetrySettings(_Section):
    """Short retries inside one push (tenacity), then the outbox's long backoff."""

    attempts: PositiveInt = 4
    max_seconds: PositiveFloat = 30.0
    backoff_initial: PositiveFloat = 0.5
    backoff_max: PositiveFloat = 8.0


class PortalSettings(_Section):
    """The national portal (or the provincial gateway in front of it)."""

    profile: Literal["rest", "soap"] = "rest"
    base_url: str
    auth_path: str = "/auth"
    integration_path: str = "/integration"
    share_path: str = "/share"
    username: str
    password: SecretRef = SecretRef()
    dstcode: str
    madonvi: str
    header_batch_size: PositiveInt = 50
    step_batch_size: PositiveInt = 200
    max_items_per_second: NonNegativeFloat = 0.0  # push rate limit; 0 is unlimited
    max_connections: PositiveInt = 8
    max_reply_bytes: PositiveInt = 4 * 1024 * 1024
    success_codes: list[str] = ["0", "00"]
    session_expired_codes: list[str] = ["401", "-1"]
    transient_codes: list[str] = ["500", "503"]
    already_exists_codes: list[str] = ["409"]
    not_found_codes: list[str] = ["404"]
    session_ttl_seconds: PositiveFloat = 1800.0
    trust_env: bool = False  # take proxies from the environment only when asked
    timeouts: TimeoutSettings = TimeoutSettings()
    retry: RetrySettings = RetrySettings()
    tls: TlsSettings = TlsSettings()

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("auth_path", "integration_path", "share_path")
    @classmethod
    def _starts_with_slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


class DeliverySettings(_Section):
    """The outbox's long retry policy (survives restarts)."""

    max_attempts: PositiveInt = 12
    backoff_initial: PositiveFloat = 5.0
    backoff_max: PositiveFloat = 900.0
    park_after_seconds: PositiveFloat = 7 * 24 * 3600.0


class ScheduleSettings(_Section):
    pull_seconds: PositiveFloat = 5.0
    push_seconds: PositiveFloat = 2.0
    reconcile_seconds: PositiveFloat = 300.0
    reconcile_sample: PositiveInt = 20
    housekeeping_seconds: PositiveFloat = 3600.0


class StatusSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token: SecretRef = SecretRef()
    # How old the outbox figures in /status and /metrics may be: they scan the whole outbox,
    # so one computation serves every request this long (longer on a slow store).
    figures_max_age_seconds: NonNegativeFloat = 10.0


class LoggingSettings(_Section):
    format: Literal["console", "json"] = "console"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(_Section):
    state: StateSettings = StateSettings()
    source: SourceSettings
    portal: PortalSettings
    delivery: DeliverySettings = DeliverySettings()
    schedule: ScheduleSettings = ScheduleSettings()
    status: StatusSettings = StatusSettings()
    logging: LoggingSettings = LoggingSettings()
    path: Path = Path("config.toml")  # the file these came from (set by `load`)

    def portal_password(self) -> SecretStr:
        secret = self._secret(self.portal.password, "portal.password")
        if secret is None:
            raise ConfigError(
                f"{self.path}: portal.password: set portal.password.env or portal.password.file"
            )
        return secret

    def status_token(self) -> SecretStr | None:
        return self._secret(self.status.token, "status.token")

    def _secret(self, ref: SecretRef, key: str) -> SecretStr | None:
        """The secret, or a ConfigError naming this file and the key."""
        try:
            return ref.read(key)
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {exc}") from exc.__cause__


def _format_error(exc: ValidationError) -> str:
    """One `key: what is wrong` per error; a missing file is named."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"].startswith("path_"):
            message = f"{message}: {err['input']}"
        lines.append(f"{key}: {message}")
    return "; ".join(lines)


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make relative file paths and sqlite URLs relative to the config file's folder."""
    for section, key in (("source", "mapping"),):
        value = raw.get(section, {}).get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            raw[section][key] = str(base / value)
    for section in ("state", "source"):
        url = raw.get(section, {}).get("url")
        if isinstance(url, str):
            raw[section]["url"] = resolve_sqlite_url(url, base)
    for section, sub in (
        ("portal", "password"),
        ("state", "password"),
        ("source", "password"),
        ("status", "token"),
    ):
        ref = raw.get(section, {}).get(sub)
        file = ref.get("file") if isinstance(ref, dict) else None
        if isinstance(file, str) and not Path(file).is_absolute():
            ref["file"] = str(base / file)
    tls = raw.get("portal", {}).get("tls", {})
    for key in ("ca_bundle", "client_cert", "client_key"):
        if isinstance(tls.get(key), str) and not Path(tls[key]).is_absolute():
            tls[key] = str(base / tls[key])
    return raw


def resolve_sqlite_url(url: str, base: Path) -> str:
    """`sqlite:///var/x.db` is relative to `base`; `sqlite:////abs/x.db` stays absolute."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((base / url[len(prefix) :]).resolve())
    return url


def load(path: str | Path | None = None) -> Settings:
    """Read and validate the configuration; every error names the key that is wrong."""
    chosen = Path(path or os.environ.get(ENV_CONFIG) or "config.toml")
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {chosen}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from exc
    raw = _resolve_paths(raw, chosen.resolve().parent)
    raw["path"] = str(chosen.resolve())
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        # Not chained: pydantic's own text repeats each refused value, a secret included.
        raise ConfigError(f"{chosen}: {_format_error(exc)}") from None
