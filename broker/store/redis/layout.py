"""Where the Redis store puts things: every Redis key it writes is named here.

    <ns>:<store key>              hash {v, n}: a record (value, version); PEXPIRE for put_ttl
    <ns>:<store key>#lock         string: lock owner token, PX ttl
    <ns>:<store key>#rate         hash {t, a}: a token bucket (tokens, at), PEXPIRE when full
    <ns>#due:{<partition tag>}    sorted set: due-time index partition, member = store key
    <ns>#index:{<index name>}     sorted set, all scores 0: an ordered index (ids, by bytes)

Store keys start with a hash tag (`{conn_1}:record`), so a record and its lock share a slot
and `<ns>:{conn_1}:*` finds all of one connection's keys. The due index lives beside the
record space (`<ns>#`, not `<ns>:`), so no scan pattern `<ns>:<prefix>*` can match it.

The due index has `DUE_PARTITIONS` (16) sorted sets; a key goes to the partition that owns its
cluster slot range, and each partition's own hash tag is picked to fall in that range. On a
Cluster whose slots are split in contiguous ranges (what `redis-cli --cluster create` does)
a partition then lives on the same shard as the records it indexes, so the index spreads
over the shards like the data and a lost shard only hides its own keys' due times.
"""

from __future__ import annotations

import re
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

DUE_PARTITIONS = 16
"""The default. The count is part of the stored format: items scheduled under another count
sit in partitions nobody reads, so change it only with a migration."""

LOCK_SUFFIX = "#lock"
RATE_SUFFIX = "#rate"
_NOT_RECORDS = (LOCK_SUFFIX, RATE_SUFFIX)

_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def _partition(slot: int, partitions: int) -> int:
    return slot * partitions // REDIS_CLUSTER_HASH_SLOTS


@cache
def partition_tags(partitions: int) -> tuple[str, ...]:
    """For partition i of n, the first tag `n-i-j` whose slot lies in partition i's range
    (the count is in the tag so a store opened with another count is visibly different)."""
    tags = []
    for i in range(partitions):
        j = 0
        while _partition(key_slot(f"{partitions}-{i}-{j}".encode()), partitions) != i:
            j += 1
        tags.append(f"{partitions}-{i}-{j}")
    return tuple(tags)


def glob_escape(text: str) -> str:
    """Escape Redis MATCH specials so `text` matches only itself (keys contain `{` `}`
    harmlessly, but a tenant id may contain `*`, `?`, `[`, `]` or a backslash)."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class Layout:
    def __init__(self, namespace: str, due_partitions: int = DUE_PARTITIONS) -> None:
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError("a Redis namespace is 1-64 characters of A-Z a-z 0-9 _ . -")
        if not 1 <= due_partitions <= 1024:
            raise ValueError("due_partitions must be between 1 and 1024")
        self.namespace = namespace
        self._record_prefix = f"{namespace}:"
        self.changes_channel = f"{namespace}#changes"
        """Pub/sub channel on which every record write announces its key (cache invalidation)."""
        self.due_keys = tuple(
            f"{namespace}#due:{{{tag}}}" for tag in partition_tags(due_partitions)
        )

    def record(self, key: str) -> str:
        if key.endswith(_NOT_RECORDS):
            # it would be indistinguishable from a lock or bucket and invisible to scan
            raise ValueError(f"store keys cannot end with {LOCK_SUFFIX!r} or {RATE_SUFFIX!r}")
        return self._record_prefix + key

    def lock(self, key: str) -> str:
        return self._record_prefix + key + LOCK_SUFFIX

    def rate(self, key: str) -> str:
        return self._record_prefix + key + RATE_SUFFIX

    def due_key(self, key: str) -> str:
        """The due-index partition holding `key`: the one owning the slot of its record."""
        slot = key_slot((self._record_prefix + key).encode())
        return self.due_keys[_partition(slot, len(self.due_keys))]

    def index(self, name: str) -> str:
        return f"{self.namespace}#index:{{{name}}}"

    def scan_pattern(self, prefix: str) -> str:
        return glob_escape(self._record_prefix + prefix) + "*"

    def store_key(self, redis_key: bytes) -> str | None:
        """The store key of a record's Redis key, or None for a lock, a bucket or a foreign
        key."""
        try:
            name = redis_key.decode()
        except UnicodeDecodeError:
            return None
        if not name.startswith(self._record_prefix) or name.endswith(_NOT_RECORDS):
            return None
        return name[len(self._record_prefix) :]
