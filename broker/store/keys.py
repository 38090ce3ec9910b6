"""Every store key the broker writes, built in one place.

A key is `{<record id>}:<part>`: the braces are a Redis Cluster hash tag, so all keys of one
record share a slot and can be updated together by one Lua script. Record ids carry their kind
as a prefix (`conn_`, `app_`, `session_`, `state_`), which is what prefix scans select on.
The Redis backend adds its namespace in front (`broker:{conn_123}:record`).
"""

from __future__ import annotations

CONNECTION_PREFIX = "{conn_"
OAUTH_APP_PREFIX = "{app_"
CONNECT_SESSION_PREFIX = "{session_"
OAUTH_STATE_PREFIX = "{state_"
TENANT_PREFIX = "{tenant_"
AUDIT_PREFIX = "{audit_"
EVENT_PREFIX = "{evt_"
EVENT_LOG = "events"
"""The ordered index of the event log: every logged event's id (`GET /v1/events` pages it)."""
GLOBAL_EVENTS = "events_global"
"""The event stream of events that belong to no connection (its keys: `{events_global}:...`)."""


def _tagged(record_id: str, part: str) -> str:
    if "{" in record_id or "}" in record_id:
        raise ValueError("record ids cannot contain braces")
    return f"{{{record_id}}}:{part}"


def connection(connection_id: str) -> str:
    return _tagged(connection_id, "record")


def refresh_lock(connection_id: str) -> str:
    return _tagged(connection_id, "refresh-lock")


def refresh_journal(connection_id: str) -> str:
    """A refresh under way or interrupted (`services.refresh.journal`); it shares the record's
    hash tag, so it is fenced by the record's refresh lock."""
    return _tagged(connection_id, "refresh-journal")


def oauth_app(credential_key: str, tenant_id: str | None = None) -> str:
    return _tagged(f"app_{credential_key}", f"tenant:{tenant_id}" if tenant_id else "default")


def connect_session(token_hash: str) -> str:
    return _tagged(f"session_{token_hash}", "record")


def connect_session_claim(token_hash: str) -> str:
    """The lock a flow holds on its connect session while it creates or changes a connection."""
    return _tagged(f"session_{token_hash}", "claim")


def oauth_state(state_hash: str) -> str:
    return _tagged(f"state_{state_hash}", "record")


def tenant_connections(tenant_id: str) -> str:
    return _tagged(f"tenant_{tenant_id}", "connections")


def webhook_delivery(connection_id: str, delivery_digest: str) -> str:
    return _tagged(connection_id, f"delivery:{delivery_digest}")


def audit_batch(tenant_id: str, suffix: str) -> str:
    return _tagged(f"audit_{tenant_id}", suffix)


def audit_index(tenant_id: str) -> str:
    """The ordered index of a tenant's audit batches (members: the batch key suffixes)."""
    return f"audit:{tenant_id}"


def event(event_id: str) -> str:
    """One event in the global log; event ids start with `evt_` and sort by creation time."""
    return _tagged(event_id, "record")


def global_events() -> str:
    """The record holding the outbox of `GLOBAL_EVENTS` (a connection's is its own record)."""
    return _tagged(GLOBAL_EVENTS, "record")


def event_outbox_due(stream: str, event_id: str) -> str:
    """Due-index entry that makes the event worker move an event its emitter left behind."""
    return _tagged(stream, f"outbox:{event_id}")


def event_queue(stream: str) -> str:
    """A stream's events still to be pushed, in order; also its due-index entry."""
    return _tagged(stream, "events")


def event_outbox_lock(stream: str) -> str:
    return _tagged(stream, "outbox-lock")


def event_delivery_lock(stream: str) -> str:
    return _tagged(stream, "events-lock")


def rate_bucket(owner: str, name: str) -> str:
    """A token bucket (`Store.rate_limit`): `owner` is a record id (`conn_1`) or a made-up one
    naming what is limited (`rate_connect_<address>`); never a secret."""
    return _tagged(owner, f"rate:{name}")


def part(key: str) -> str:
    """What follows the hash tag: `{conn_1}:record` -> `record`."""
    return key[key.find("}") + 2 :]


def record_id(key: str) -> str:
    """The record id inside a key's hash tag: `{conn_1}:record` -> `conn_1`."""
    start, end = key.find("{"), key.find("}")
    if start != 0 or end < 2:
        raise ValueError(f"not a broker store key: {key!r}")
    return key[1:end]
