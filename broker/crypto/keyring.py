"""The keyring: named AES-256 keys, exactly one of them primary.

On disk it is JSON, `{"primary": "<id>", "keys": {"<id>": "<standard base64 of 32 bytes>"}}`.
A `Keyring` is an immutable value: rotation steps (`with_key`, `promoted`, `without`) return a
new keyring, so a running broker swaps the whole thing atomically (e.g. on SIGHUP).

Error messages name fields and key ids, never key material. An id that fails validation is
not echoed either: a swapped id and value in the JSON would otherwise print the key.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker.errors import ConfigError, UnknownKey

log = logging.getLogger("broker.keyring")

KEY_SIZE = 32
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
_KEY_ID_RULE = "key ids must match [A-Za-z0-9_-]{1,32}"


def valid_key_id(key_id: object) -> bool:
    return isinstance(key_id, str) and KEY_ID_PATTERN.fullmatch(key_id) is not None


def new_key_id() -> str:
    """`k-<yyyymmdd>-<6 hex>`: sorts by creation date, readable in `keys list` output."""
    return f"k-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes] = field(repr=False, hash=False)
    primary: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("keyring has no keys")
        for position, (key_id, key) in enumerate(self.keys.items(), start=1):
            if not valid_key_id(key_id):
                raise ConfigError(f"keyring key #{position} has an invalid id ({_KEY_ID_RULE})")
            if not isinstance(key, bytes) or len(key) != KEY_SIZE:
                raise ConfigError(f"keyring key {key_id!r} is not {KEY_SIZE} bytes")
        if not valid_key_id(self.primary):
            raise ConfigError(f"keyring primary is not a valid key id ({_KEY_ID_RULE})")
        if self.primary not in self.keys:
            raise ConfigError(f"keyring primary {self.primary!r} is not among its keys")
        # Freeze a private copy so a caller mutating its dict cannot change the keyring.
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    def __repr__(self) -> str:
        return f"Keyring(primary={self.primary!r}, ids={self.ids!r})"

    @property
    def ids(self) -> list[str]:
        return sorted(self.keys)

    @property
    def primary_key(self) -> bytes:
        return self.keys[self.primary]

    def key(self, key_id: str) -> bytes:
        """The key named `key_id`; `UnknownKey` if the keyring does not hold it."""
        try:
            return self.keys[key_id]
        except KeyError:
            raise UnknownKey(key_id) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.keys

    # --- construction --------------------------------------------------------------------

    @classmethod
    def generate(cls, key_id: str | None = None) -> Keyring:
        """A new keyring holding one fresh random key, which is primary."""
        key_id = key_id or new_key_id()
        return cls(keys={key_id: secrets.token_bytes(KEY_SIZE)}, primary=key_id)

    @classmethod
    def from_json(cls, text: str | bytes) -> Keyring:
        try:
            doc: Any = json.loads(text, object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError):  # RecursionError: nested past the decoder
            # The decoder's message quotes the offending text, which may be key material.
            raise ConfigError("keyring is not valid JSON") from None
        if not isinstance(doc, dict):
            raise ConfigError("keyring must be a JSON object")
        unknown = set(doc) - {"primary", "keys"}
        if unknown:
            raise ConfigError(f"keyring has unknown fields: {sorted(unknown)}")
        primary, encoded = doc.get("primary"), doc.get("keys")
        if not isinstance(primary, str):
            raise ConfigError('keyring field "primary" must be a string')
        if not isinstance(encoded, dict):
            raise ConfigError('keyring field "keys" must be an object of id -> base64 key')
        keys: dict[str, bytes] = {}
        for position, (key_id, value) in enumerate(encoded.items(), start=1):
            if not valid_key_id(key_id):
                raise ConfigError(f"keyring key #{position} has an invalid id ({_KEY_ID_RULE})")
            keys[key_id] = _decode_key(key_id, value)
        return cls(keys=keys, primary=primary)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyring:
        """Read the file; warn (it still loads) when group or others may read it."""
        try:
            with Path(path).open("rb") as handle:
                mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)  # the file we read
                text = handle.read()
        except OSError as exc:
            raise ConfigError(
                f"cannot read keyring file {os.fspath(path)!r}: {exc.strerror}"
            ) from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning(
                "keyring file %s is readable by group or others (mode %04o): chmod 600 it",
                os.fspath(path),
                mode,
            )
        return cls.from_json(text)

    def to_json(self) -> str:
        doc = {
            "primary": self.primary,
            "keys": {key_id: base64.b64encode(self.keys[key_id]).decode() for key_id in self.ids},
        }
        return json.dumps(doc, indent=2) + "\n"

    # --- rotation steps (each returns a new keyring) -------------------------------------

    def with_key(self, key_id: str, key: bytes | None = None) -> Keyring:
        """Add a key (fresh random unless given); the primary does not change."""
        if key_id in self.keys:
            raise ConfigError(f"keyring already has a key {key_id!r}")
        key = secrets.token_bytes(KEY_SIZE) if key is None else key
        return Keyring(keys={**self.keys, key_id: key}, primary=self.primary)

    def promoted(self, key_id: str) -> Keyring:
        """Make `key_id` the primary: new seals use it, old values still open."""
        if key_id not in self.keys:
            raise ConfigError(f"cannot promote {key_id!r}: no such key in the keyring")
        return Keyring(keys=self.keys, primary=key_id)

    def without(self, key_id: str) -> Keyring:
        """Retire a key: values sealed under it no longer open."""
        if key_id not in self.keys:
            raise ConfigError(f"cannot retire {key_id!r}: no such key in the keyring")
        if key_id == self.primary:
            raise ConfigError(f"cannot retire {key_id!r}: it is the primary key")
        return Keyring(
            keys={k: v for k, v in self.keys.items() if k != key_id}, primary=self.primary
        )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal names: a key would silently go missing.
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ConfigError("keyring JSON repeats a field or key id")
    return doc


def _decode_key(key_id: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"keyring key {key_id!r} must be a base64 string")
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"keyring key {key_id!r} is not valid standard base64") from None
    if len(key) != KEY_SIZE:
        size = f"{len(key)} byte" + ("" if len(key) == 1 else "s")
        raise ConfigError(f"keyring key {key_id!r} decodes to {size}, not {KEY_SIZE}")
    return key


def save_keyring(path: str | os.PathLike[str], keyring: Keyring) -> None:
    """Write atomically with mode 0600: a crash leaves the old file or the new, never half."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(keyring.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Persist the rename itself, so a power loss cannot bring back the old keyring.
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def derive_key(keyring: Keyring, key_id: str, purpose: str | bytes) -> bytes:
    """A 32-byte subkey of keyring key `key_id` for one purpose (HKDF-SHA256).

    Keeps the raw AES keys single-use: the runtime-token HMAC key is derived, not reused,
    and it rotates with the keyring because it hangs off a key id.
    """
    info = purpose.encode() if isinstance(purpose, str) else purpose
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=b"broker/" + info)
    return hkdf.derive(keyring.key(key_id))
