"""Configuration: one `Settings`, read once from `BROKER_*` environment variables.

Invalid configuration raises `ConfigError` with one line per bad variable, so `broker serve`
can refuse to start with a message an operator can act on. Lists are comma-separated.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from broker.errors import ConfigError
from broker.logs import LogFormat, LogLevel

WHSEC_PREFIX = "whsec_"
MIN_EVENTS_SECRET_BYTES = 16
STORE_SCHEMES = ("sqlite", "redis", "rediss", "redis+cluster", "redis+sentinel")
MIN_ADMIN_TOKEN_LENGTH = 16
LOGO_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
CRASH_POINTS = ("before_intent", "before_send", "after_journal", "after_apply")
"""Where `BROKER_TEST_CRASH_AT` kills a refresh (services/refresh/crash_points.py)."""


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def events_signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: `whsec_<base64>`, or bare base64 as the
    spec's libraries take it too (so a receiver verifying with the same string agrees)."""
    encoded = secret.removeprefix(WHSEC_PREFIX)
    encoded += "=" * (-len(encoded) % 4)  # the libraries accept unpadded base64
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "must be whsec_<base64> (or bare base64), as Standard Webhooks receivers expect"
        ) from None


def nameserver_address(server: str) -> tuple[str, int] | None:
    """(address, port) of `ip[:port]` or `[ipv6][:port]` (port 53 by default); None if it
    is neither."""
    host, port = server, "53"
    if server.startswith("["):
        host, sep, rest = server[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] or port
    elif server.count(":") == 1:
        host, port = server.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return address.compressed, int(port)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    store: str = "sqlite:///./broker-data/broker.db"
    keyring_file: Path | None = None
    admin_token: Annotated[list[SecretStr], NoDecode] = []
    admin_token_file: Path | None = None
    """File of admin token hashes (`sha256:<hex>` per line), followed while serving."""
    public_url: str = ""
    allowed_return_origins: Annotated[list[str], NoDecode] = []
    connectors_dirs: Annotated[list[Path], NoDecode] = []
    runtime_url: str | None = None
    refresh_margin: int = Field(default=300, ge=0, le=86_400)
    idle_refresh_interval: int = Field(default=7 * 86_400, ge=0)
    """Seconds after which a refresh token with no expiring access token is exercised (0: never)."""
    refresh_lock_ttl: float = Field(default=15.0, ge=2.0, le=300.0)
    """Seconds a refresh lock lives; a provider call gets what is left of it less a quarter
    kept for the writes, and the token write is fenced by the lock (services.refresh.lock)."""
    forced_refresh_interval: float = Field(default=10.0, ge=0, le=3600)
    """Seconds after a forced refresh reached the provider during which forced refreshes of
    the same connection do not (0: no limit)."""
    refresher: bool = True
    """Run the proactive background refresher in this process."""
    audit_retention: int = Field(default=30 * 86_400, ge=60)
    settings_history: int = Field(default=5, ge=0, le=100)
    """Earlier settings versions kept per connection (for rollback)."""
    settings_history_ttl: int = Field(default=30 * 86_400, ge=0)
    """Seconds an earlier settings version is kept after it was replaced (0: no limit)."""
    webhook_secret_grace: int = Field(default=86_400, ge=0)
    """Seconds a replaced webhook signing secret still verifies (providers roll slowly)."""
    webhook_replay_window: int = Field(default=86_400, ge=600)
    """Seconds a webhook delivery stays claimed where its scheme signs no timestamp (GitHub,
    Shopify): a replay after that verifies again. Never below the 2 x 300 s in which a
    timestamped delivery is accepted."""
    webhook_base_url: str = ""
    events_url: str | None = None
    """Where events are pushed (POST, Standard Webhooks signatures); unset: pull only."""
    events_secret: SecretStr | None = None
    """`whsec_<base64>` signing secret for pushed events; required with `events_url`."""
    events_retention: int = Field(default=7 * 86_400, ge=60)
    """Seconds an event stays in the log (GET /v1/events, and push retries)."""
    events_worker: bool = True
    """Run the event worker (outbox recovery and push delivery) in this process."""
    events_retry_base: float = Field(default=1.0, gt=0, le=3600)
    """First push retry delay in seconds; it doubles per failed attempt."""
    events_retry_max: float = Field(default=300.0, gt=0, le=86_400)
    events_pull_delay: float = Field(default=2.0, ge=0, le=300)
    """GET /v1/events lists an event only once it is this many seconds old, so an event
    still on its way into the log cannot land behind a consumer's cursor."""
    proxy_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    """The largest request body the egress proxy forwards (413 above it); an idempotent
    call of an OAuth connection holds its body in memory up to this size, for a retry."""
    proxy_timeout: float = Field(default=60.0, gt=0, le=3600)
    """Seconds the egress proxy waits to connect to a provider, and at most between two
    reads of its answer (a long answer may stream for longer in all)."""
    log_format: LogFormat = "text"
    """`json`: one JSON object per log line, for a log shipper (broker/logs.py)."""
    log_level: LogLevel = "INFO"
    dev: bool = False
    """Set by `broker serve --dev`: local keyring and admin token under ./broker-data."""
    brand_name: str = Field(default="", max_length=80)
    """The product name the Connect pages show (empty: none)."""
    brand_accent: str = Field(default="#1d4ed8", pattern=r"^#[0-9a-fA-F]{6}$")
    """The Connect pages' accent colour, `#rrggbb` (buttons, the top bar)."""
    brand_logo_file: Path | None = None
    """A PNG, SVG, JPEG, WebP or GIF the Connect pages show, served by the broker."""
    egress_nameservers: Annotated[list[str], NoDecode] = []
    """DNS servers (`ip[:port]`, `[ipv6]:port`) that resolve provider hosts for the egress
    proxy; empty: the system resolver. Every answer is checked (docs/architecture.md)."""
    test_crash_at: str | None = None
    """Tests only, refused outside dev mode: `<point>[:<connector>]` makes the process SIGKILL
    itself when a refresh (of that connector) reaches the point (`CRASH_POINTS`)."""

    _split_lists = field_validator(
        "admin_token",
        "allowed_return_origins",
        "connectors_dirs",
        "egress_nameservers",
        mode="before",
    )(_split)

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in STORE_SCHEMES:
            raise ValueError(
                f"must start with one of {', '.join(s + '://' for s in STORE_SCHEMES)}"
            )
        return value

    @field_validator("public_url", "webhook_base_url", "runtime_url", "events_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http:// or https:// URL")
            return value.rstrip("/")
        return value

    @field_validator("events_secret")
    @classmethod
    def _events_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            key = events_signing_key(value.get_secret_value())
            if len(key) < MIN_EVENTS_SECRET_BYTES:
                raise ValueError(f"the key must be at least {MIN_EVENTS_SECRET_BYTES} bytes")
        return value

    @field_validator("brand_logo_file")
    @classmethod
    def _logo(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix.lower() not in LOGO_TYPES:
            raise ValueError(f"must be one of {', '.join(sorted(LOGO_TYPES))}")
        return value

    @field_validator("allowed_return_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin_of(origin) != origin or not urlsplit(origin).netloc:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return value

    @field_validator("egress_nameservers")
    @classmethod
    def _nameservers(cls, value: list[str]) -> list[str]:
        for server in value:
            if nameserver_address(server) is None:
                raise ValueError(f"{server!r} is not ip[:port] or [ipv6]:port")
        return value

    @field_validator("admin_token")
    @classmethod
    def _token_strength(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(t.get_secret_value()) < MIN_ADMIN_TOKEN_LENGTH for t in value):
            raise ValueError(
                f"every admin token needs at least {MIN_ADMIN_TOKEN_LENGTH} characters"
            )
        return value

    @field_validator("test_crash_at")
    @classmethod
    def _crash_point(cls, value: str | None) -> str | None:
        if value is not None and value.partition(":")[0] not in CRASH_POINTS:
            raise ValueError(f"must be <point>[:<connector>], a point one of {CRASH_POINTS}")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        # Derived defaults (DESIGN section 11); set here so every reader sees final values.
        public = self.public_url or f"http://{self.host}:{self.port}"
        object.__setattr__(self, "public_url", public)
        if not self.webhook_base_url:
            object.__setattr__(self, "webhook_base_url", public)
        if not self.allowed_return_origins:
            object.__setattr__(self, "allowed_return_origins", [origin_of(public)])
        if self.events_url and self.events_secret is None:
            raise ValueError("BROKER_EVENTS_URL needs BROKER_EVENTS_SECRET (events are signed)")
        if self.test_crash_at and not self.dev:
            # it kills the process on purpose: never by a stray variable in production
            raise ValueError("BROKER_TEST_CRASH_AT is for tests and needs `broker serve --dev`")
        return self

    def require_runnable(self) -> None:
        """What `serve` needs beyond well-formed values; dev mode fills these in itself."""
        problems = []
        if self.keyring_file is None:
            problems.append(
                "BROKER_KEYRING_FILE: not set (run `broker keys generate`, or `broker serve --dev`)"
            )
        elif not self.keyring_file.is_file():
            problems.append(f"BROKER_KEYRING_FILE: {self.keyring_file} does not exist")
        if not self.admin_token and self.admin_token_file is None:
            problems.append("BROKER_ADMIN_TOKEN: not set (nor BROKER_ADMIN_TOKEN_FILE)")
        if self.admin_token_file is not None and not self.admin_token_file.is_file():
            problems.append(f"BROKER_ADMIN_TOKEN_FILE: {self.admin_token_file} does not exist")
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))

    @property
    def sqlite_path(self) -> str | None:
        if self.store.startswith("sqlite://"):
            return self.store.removeprefix("sqlite://").removeprefix("/") or None
        return None


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (overrides win); `ConfigError` lists every bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            name = "BROKER_" + str(err["loc"][0]).upper() if err["loc"] else "BROKER_*"
            lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
