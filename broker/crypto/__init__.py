"""Keyring and AEAD sealing. Pure: no aiohttp, redis or sockets (see the import rule)."""

from __future__ import annotations

from broker.crypto.aead import (
    FORMAT_VERSION,
    key_id_of,
    named_key_id,
    needs_rewrap,
    open_sealed,
    seal,
    sealed_header,
)
from broker.crypto.keyring import (
    KEY_SIZE,
    Keyring,
    derive_key,
    new_key_id,
    save_keyring,
    valid_key_id,
)
from broker.crypto.keyring_file import KeyringFile

__all__ = [
    "FORMAT_VERSION",
    "KEY_SIZE",
    "Keyring",
    "KeyringFile",
    "derive_key",
    "key_id_of",
    "named_key_id",
    "needs_rewrap",
    "new_key_id",
    "open_sealed",
    "save_keyring",
    "seal",
    "sealed_header",
    "valid_key_id",
]
