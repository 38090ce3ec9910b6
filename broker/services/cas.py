"""One compare-and-set update of a stored record: read it, change it, write it on the
version read, and on a `VersionConflict` (someone wrote in between) do it all again.

Every read-modify-write of a record the broker shares between requests and replicas goes
through `update`: the connection records, the tenant index, the event streams and queues.
The store has no transactions across keys, so this loop is how a change lands on the newest
record instead of overwriting a concurrent one.

The change sees the record as read (None: there is none) and answers what to write:
- a record: written with `expect_version` (create-only when there was none);
- None: nothing to write (the change is already there, or no longer applies);
- `DELETE`: delete the record, on the version read.
It may raise to abort (nothing is written), and it is a coroutine, so steps that must be
repeated on every attempt (arming an outbox entry for the events it adds) go inside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from pydantic import BaseModel

from broker.errors import VersionConflict
from broker.services import records
from broker.store.base import Fence
from broker.store.sealed import SealedStore

R = TypeVar("R", bound=BaseModel)

CAS_RETRIES = 20
"""Attempts before giving up with `VersionConflict`: each lost one means another write
landed, so running out means the record is far busier than any of ours should be."""


class Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Final = Delete()
"""What a change answers to delete the record it was given (on the version read)."""


Change = Callable[[R | None], Awaitable[R | Delete | None]]
"""What to write given the record as read (None: there is none); see the module docstring."""


@dataclass(frozen=True, slots=True)
class Updated(Generic[R]):
    record: R | None
    """As written; as read when nothing was written (None: no record, or deleted)."""
    version: int
    """The version written, or read (0: no record)."""
    written: bool


async def update(
    store: SealedStore,
    key: str,
    model: type[R],
    change: Change[R],
    *,
    contended: str,
    fence: Fence | None = None,
) -> Updated[R]:
    """Apply `change` to the record at `key` until a write lands on the version it read.
    `contended` is the `VersionConflict` message when every attempt lost; `fence` makes
    each write land only while its lock is held (`LockLost` otherwise, not retried)."""
    for _ in range(CAS_RETRIES):
        found = await records.load(store, key, model)
        current, version = found if found is not None else (None, 0)
        wanted = await change(current)
        if wanted is None or (wanted is DELETE and current is None):
            return Updated(current, version, written=False)
        try:
            if isinstance(wanted, Delete):
                await store.delete(key, expect_version=version)
                return Updated(None, 0, written=True)
            written = await records.save(store, key, wanted, version, fence)
        except VersionConflict:
            continue
        return Updated(wanted, written, written=True)
    raise VersionConflict(contended)
