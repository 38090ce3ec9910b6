"""The `Settings` model: every `BROKER_*` variable, its default and its own check, and the
defaults derived from other settings. Lists are comma-separated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from broker.config.values import (
    CRASH_POINTS,
    LOGO_TYPES,
    MIN_ADMIN_TOKEN_LENGTH,
    MIN_EVENTS_SECRET_BYTES,
    check_http_url,
    check_origins,
    check_store_url,
    events_signing_key,
    nameserver_address,
    origin_of,
    split_list,
)
from broker.errors import ConfigError
from broker.logs import LogFormat, LogLevel


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
    shutdown_grace: float = Field(default=25.0, ge=0, le=3600)
    """Seconds a SIGTERM leaves requests in flight to finish (the listener is closed at once);
    background work then gets what is left of the same bound."""
    request_timeout: float = Field(default=20.0, ge=0, le=3600)
    """Seconds a request may take until its answer starts (503 `timeout`; 0: no limit)."""
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=1 << 30)
    max_header_bytes: int = Field(default=8190, ge=1024, le=1 << 20)
    """The longest request line and header line (431 `headers_too_large` above it)."""
    connect_rate_limit: float = Field(default=2.0, ge=0, le=1_000_000)
    """Requests per second per client address on the Connect pages (0: no limit)."""
    connect_rate_burst: int = Field(default=60, ge=1, le=1_000_000)
    runtime_rate_limit: float = Field(default=0.0, ge=0, le=1_000_000)
    """Requests per second per runtime token on /v1/runtime/* (0: no limit, no store call)."""
    runtime_rate_burst: int = Field(default=100, ge=1, le=1_000_000)
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = []
    """Peers whose `X-Forwarded-For` names the client (CIDRs); anyone else is the client."""
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
        "trusted_proxies",
        "egress_nameservers",
        mode="before",
    )(split_list)

    @field_validator("egress_nameservers")
    @classmethod
    def _nameservers(cls, value: list[str]) -> list[str]:
        for server in value:
            if nameserver_address(server) is None:
                raise ValueError(f"{server!r} is not ip[:port] or [ipv6]:port")
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    _store_url = field_validator("store")(check_store_url)
    _http_url = field_validator("public_url", "webhook_base_url", "runtime_url", "events_url")(
        check_http_url
    )
    _origins = field_validator("allowed_return_origins")(check_origins)

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
        if problems := self.runnable_problems():
            raise ConfigError.listing(problems)

    def runnable_problems(self) -> list[str]:
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
        return problems

    @property
    def sqlite_path(self) -> str | None:
        if self.store.startswith("sqlite://"):
            return self.store.removeprefix("sqlite://").removeprefix("/") or None
        return None
