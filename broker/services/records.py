"""What the broker stores, as pydantic models, and how they go in and out of the sealed store.

Every record is one JSON document sealed whole under its store key (the AAD), so secrets and
the non-secret fields beside them can never be mixed up across records. Times are unix
seconds (floats) inside records and ISO-8601 UTC on the wire.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from broker.errors import NotFound
from broker.oauth import TokenSet
from broker.services.record_ids import is_connection_id
from broker.store import keys
from broker.store.base import Fence
from broker.store.sealed import SealedStore

ConnectionStatus = Literal["active", "needs_reauth", "revoked"]
ReauthReason = Literal["invalid_grant", "refresh_lost", "revoked_upstream"]
"""Why a connection needs reauthorization: the provider refused the grant, the answer of a
refresh that spent the refresh token was lost (`services.refresh.journal`), or the provider
reported the grant revoked."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StoredToken(_Record):
    access_token: str
    token_type: str = "Bearer"
    refresh_token: str | None = None
    expires_at: float | None = None
    scopes: list[str] = []
    id_token: str | None = None
    extra: dict[str, Any] = {}
    obtained_at: float

    @classmethod
    def from_token_set(cls, tokens: TokenSet, obtained_at: float) -> StoredToken:
        return cls(
            access_token=tokens.access_token,
            token_type=tokens.token_type,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scopes=list(tokens.scopes),
            id_token=tokens.id_token,
            extra=dict(tokens.extra),
            obtained_at=obtained_at,
        )


class RefreshState(_Record):
    last_refresh_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    failures: int = 0
    next_attempt_at: float | None = None
    last_forced_at: float | None = None
    """When a forced refresh last called the provider (`BROKER_FORCED_REFRESH_INTERVAL`)."""
    not_before: float | None = None
    """Until when the provider asked not to be called (its `Retry-After`): no refresh calls
    it before then, forced or not, whether or not a valid token is left."""
    rotation_seen: bool = False
    """A refresh of this grant answered a new refresh token: the provider rotates them, whatever
    its manifest says (`services.refresh.journal`)."""


class RefreshJournal(_Record):
    """A refresh of one connection from the moment it spends the refresh token until its
    answer is applied (`services.refresh.journal`). Sealed like every record: it holds the
    provider's answer."""

    owner: str
    """The refresh lock's owner token when the refresh started."""
    spent: str
    """SHA-256 (hex) of the refresh token sent."""
    spent_at: float
    """When that refresh token was first sent: a provider's reuse window runs from then."""
    started_at: float
    answer: StoredToken | None = None
    """The provider's answer, written the moment it arrived, before anything else."""
    lost: bool = False
    """Recovery found no answer and the token spent for good: `needs_reauth` follows."""


class SettingsVersion(_Record):
    version: int
    settings: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    created_at: float
    replaced_at: float | None = None


class Event(_Record):
    """An outbound event (`broker.services.events`): names, statuses and error codes only."""

    id: str
    type: str
    created_at: float
    tenant_id: str | None = None
    connection_id: str | None = None
    connector: str | None = None
    data: dict[str, Any] = {}


class Outboxed(_Record):
    """A record that owns an event stream: events join `outbox` in the same CAS write as the
    change they describe, and leave it once they are in the event log."""

    outbox: list[Event] = []
    last_event_id: str | None = None
    """The stream's newest event id: the next one is made larger, whatever the clocks say."""
    events_closed: bool = False
    """Set with the final event (`connection.deleted`): nothing is emitted after it."""


class RuntimeView(_Record):
    """The fields of a connection record that a runtime read uses, parsed from the same
    JSON: settings history, event outbox and refresh bookkeeping are skipped, so a read's
    parse does not grow with the record's history (figures in docs/benchmarks.md)."""

    tenant_id: str
    connector: str
    status: ConnectionStatus = "active"
    settings: dict[str, Any] = {}
    """Current non-secret settings."""
    secrets: dict[str, str] = {}
    """Current secret settings (`x-secret`), sealed with the rest of the record."""
    settings_version: int = 1
    token: StoredToken | None = None


class Connection(Outboxed, RuntimeView):
    id: str
    settings_since: float | None = None
    """When the current settings version became current (None: since creation)."""
    history: list[SettingsVersion] = []
    """Earlier settings versions, newest first (rotation rollback)."""
    refresh: RefreshState = Field(default_factory=RefreshState)
    reauth_reason: ReauthReason | None = None
    """Set with `status: needs_reauth`; cleared by a reconnect."""
    created_at: float
    updated_at: float


class OAuthApp(_Record):
    credential_key: str
    tenant_id: str | None = None
    client_id: str
    client_secret: str | None = None
    private_key: str | None = None
    key_id: str | None = None
    previous_client_secret: str | None = None
    """The secret this one replaced, kept for webhook verification during a roll."""
    secret_rotated_at: float | None = None
    updated_at: float


class ConnectSession(_Record):
    tenant_id: str
    connector: str
    return_url: str
    connection_id: str | None = None
    """The connection a reconnect changes."""
    new_connection_id: str | None = None
    """The id a new connection gets, fixed when the session is made: the webhook URL the page
    shows before the connection exists is then the one that works."""
    settings: dict[str, Any] = {}
    skip_interstitial: bool = False
    """The dashboard shows its own pages: no interstitial, OAuth failures straight back."""
    created_at: float
    expires_at: float
    used_at: float | None = None
    """Set when a connection completed through it: the record stays a while as a tombstone,
    so a reopened link can say so and lead back to the dashboard."""

    @property
    def target_id(self) -> str | None:
        """The id of the connection this session makes or changes."""
        return self.connection_id or self.new_connection_id


class OAuthState(_Record):
    session_hash: str
    connector: str
    tenant_id: str
    return_url: str
    connection_id: str | None = None
    new_connection_id: str | None = None
    show_pages: bool = False
    """A failure is a page with a link back (not a redirect); False for states stored before
    the pages existed, which keep the behaviour they began with."""
    settings: dict[str, Any] = {}
    redirect_uri: str
    code_verifier: str | None = None
    browser_hash: str
    credential_key: str
    created_at: float


class GlobalEvents(Outboxed):
    """The stream of events that belong to no connection (`keys.rewrap_completed`)."""


class Delivery(_Record):
    attempts: int = 0
    next_attempt_at: float | None = None
    delivered_at: float | None = None
    last_error: str | None = None


class LoggedEvent(_Record):
    """One event in the global log, with its push delivery state."""

    event: Event
    stream: str
    expires_at: float
    delivery: Delivery = Field(default_factory=Delivery)


class EventQueue(_Record):
    """Ids of a stream's events still to be pushed, oldest first (push order per stream)."""

    pending: list[str] = []
    last_enqueued: str | None = None
    """Ids only ever grow within a stream, so moving the same events twice (a crash between
    logging them and clearing the outbox) does not queue them twice."""


class TenantIndex(_Record):
    """Ids only: the connections of one tenant, for listing without a full scan."""

    connection_ids: list[str] = []


R = TypeVar("R", bound=BaseModel)


async def load(store: SealedStore, key: str, model: type[R]) -> tuple[R, int] | None:
    found = await store.get(key)
    if found is None:
        return None
    raw, version = found
    return model.model_validate_json(raw), version


async def load_cached(store: SealedStore, key: str, model: type[R]) -> tuple[R, int] | None:
    """`load` through the read cache (hot read paths only, never before a CAS write)."""
    found = await store.get_cached(key)
    if found is None:
        return None
    raw, version = found
    return model.model_validate_json(raw), version


async def load_connection(
    store: SealedStore, connection_id: str, *, cached: bool = False
) -> tuple[Connection, int]:
    """The connection record and its version; `NotFound` when there is none. `cached` reads
    through the hot-path cache: only for callers that do not write back what they read."""
    found = None
    if is_connection_id(connection_id):
        read = load_cached if cached else load
        found = await read(store, keys.connection(connection_id), Connection)
    if found is None:
        raise NotFound(f"no connection {connection_id!r}")
    return found


async def save(
    store: SealedStore,
    key: str,
    record: BaseModel,
    expect_version: int | None,
    fence: Fence | None = None,
) -> int:
    """CAS write; with `fence`, only while its lock is still held (`Store.put_fenced`)."""
    value = record.model_dump_json().encode()
    if fence is not None:
        return await store.put_fenced(key, value, expect_version, fence)
    return await store.put(key, value, expect_version)


async def save_ttl(store: SealedStore, key: str, record: BaseModel, ttl: float) -> int:
    return await store.put_ttl(key, record.model_dump_json().encode(), ttl)


async def take(store: SealedStore, key: str, model: type[R]) -> R | None:
    raw = await store.take(key)
    return None if raw is None else model.model_validate_json(raw)
