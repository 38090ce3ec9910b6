"""Outbound events: what happened to a connection (or to the keys), for the platform. The
package's entry point: the rest of the broker imports from here.

- `ids`: event ids, ordered by time within a stream across replicas;
- `log`: emitting (an event joins its record's outbox in the change's own write), the log
  read by pull consumers, and the command line's `announce`;
- `outbox`: moving events from a record's outbox into the log and the push queues;
- `delivery`: the `EventWorker`, which finishes interrupted moves and pushes queued events.
"""

from broker.services.events.delivery import EventWorker, sign
from broker.services.events.ids import EVENT_ID, id_time_ms, is_event_id, new_event_id
from broker.services.events.log import (
    EVENT_TYPES,
    Emitter,
    add,
    announce,
    delete_connection,
    emit_global,
    iso_ms,
    list_after,
    payload,
    save,
    update_connection,
)
from broker.services.events.outbox import EventContext

__all__ = [
    "EVENT_ID",
    "EVENT_TYPES",
    "Emitter",
    "EventContext",
    "EventWorker",
    "add",
    "announce",
    "delete_connection",
    "emit_global",
    "id_time_ms",
    "is_event_id",
    "iso_ms",
    "list_after",
    "new_event_id",
    "payload",
    "save",
    "sign",
    "update_connection",
]
