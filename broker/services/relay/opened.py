"""An API-key connection's credential, kept opened between its proxied calls while its
record is unchanged.

Opening it costs every call a decryption of the sealed record, a parse of its JSON and
the credential built anew (its share of a proxied call: docs/benchmarks.md, "Egress
proxy"). The record cache (`broker.store.cache`) already says, without
opening anything, whether the record is still the one read: its version. So the
credential built from a version is kept beside it and served while the record cache holds
that same version, for the same grant's tenant and connector and the same
`connection.httpAuth` object (a catalog reload makes new ones). Any other answer drops it:
a changed, deleted or expired record goes the full way (`runtime_access`), checks and all,
and the entry is replaced or gone. And the moment the record cache drops a record for a
change (this replica's write, or another's through the change feed), the opened
credential is dropped with it (`SealedStore.follow_changes`): a deleted connection's key
does not stay opened here until some later call. Without a record cache (SQLite) nothing
is kept.

The values are held in memory only, like the connection pools' own state, never logged
(a `Credential`'s repr is the dataclass's: this module never formats one), and at most
`MAX_ENTRIES` of them per store. OAuth connections do not come here: their token path has
its own refresh logic and is already cheap.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from broker.crypto.runtime_tokens import RuntimeGrant
from broker.manifest import HttpAuth
from broker.services.relay.credentials import Credential
from broker.store.sealed import SealedStore

MAX_ENTRIES = 1024


@dataclass(frozen=True)
class _Opened:
    version: int
    tenant_id: str
    connector: str
    auth: HttpAuth
    credential: Credential


class OpenedCredentials:
    def __init__(self, store: SealedStore) -> None:
        self._entries: dict[str, _Opened] = {}
        self.enabled = store.follow_changes(self.forget)
        """There is a record cache to follow (none: nothing is ever kept)."""

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def forget(self, key: str | None) -> None:
        """The record `key` changed or went (None: any may have): drop what was opened."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    def get(
        self, key: str, version: int | None, grant: RuntimeGrant, auth: HttpAuth
    ) -> Credential | None:
        """The credential opened from `version` of record `key` (None: read it anew)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (
            entry.version == version
            and entry.auth is auth
            and entry.tenant_id == grant.tenant_id
            and entry.connector == grant.connector
        ):
            return entry.credential
        del self._entries[key]  # stale: no opened value outlives its record's version
        return None

    def put(
        self, key: str, version: int, grant: RuntimeGrant, auth: HttpAuth, credential: Credential
    ) -> None:
        if not self.enabled:
            return
        if key not in self._entries and len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]  # oldest first
        self._entries[key] = _Opened(version, grant.tenant_id, grant.connector, auth, credential)


_BY_STORE: weakref.WeakKeyDictionary[SealedStore, OpenedCredentials] = weakref.WeakKeyDictionary()


def opened_for(store: SealedStore) -> OpenedCredentials:
    """The store's own (a process may hold several stores: tests do), gone with it."""
    found = _BY_STORE.get(store)
    if found is None:
        found = _BY_STORE[store] = OpenedCredentials(store)
    return found
