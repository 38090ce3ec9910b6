"""Event ids: `evt_` + 13-digit unix ms + replica + counter.

An id sorts by the time its event was made, is unique across replicas without asking any
of them, and is made strictly above its stream's last id: one connection's events stay in
order in the log and on the wire even across replicas whose clocks disagree. Ids also bound
the log's retention (`retention_floor`): the index is trimmed below an id-shaped floor.
"""

from __future__ import annotations

import itertools
import re
import secrets

from broker.services import record_ids

EVENT_ID = re.compile(r"evt_[0-9]{13}[0-9a-f]{16}")

_REPLICA = secrets.token_hex(4)
_sequence = itertools.count()


def new_event_id(now: float, after: str | None = None) -> str:
    """`evt_` + 13-digit unix ms + replica + counter: sorts by creation time and is unique
    across replicas. Strictly above `after` (the stream's last id) even when this replica's
    clock is behind the one that wrote it, so a stream's id order is its real order."""
    ms = int(now * 1000)
    if after is not None:
        ms = max(ms, id_time_ms(after) + 1)
    return f"evt_{ms:013d}{_REPLICA}{next(_sequence) % 16**8:08x}"


def is_event_id(value: str) -> bool:
    return EVENT_ID.fullmatch(value) is not None


def id_time_ms(event_id: str) -> int:
    return int(event_id[4:17])


def retention_floor(now: float, retention: float) -> str:
    """Below every event id still inside the retention, above every one past it (ids are
    `evt_` + 13-digit ms + ...)."""
    return "evt_" + record_ids.time_key(now - retention)
