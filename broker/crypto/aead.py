"""Seal and open values with AES-256-GCM under a keyring.

A sealed value is ASCII bytes: `1.<key id>.<base64url-no-padding(nonce || ciphertext || tag)>`.
It names its key so a keyring holding old and new keys opens both, and rotation can find
what still needs rewrapping (`key_id_of`) without decrypting anything.

The header (`1.<key id>.`) is authenticated along with the caller's AAD, so a value cannot
be relabelled to another format version or key id.

Errors never carry the plaintext, the key, or any part of an unparsable value (a value
stored unsealed by mistake would otherwise end up in a log).
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.keyring import Keyring, valid_key_id
from broker.errors import CryptoError

FORMAT_VERSION = "1"
_VERSION = FORMAT_VERSION.encode("ascii")
NONCE_SIZE = 12
TAG_SIZE = 16
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# bits of the last character that carry no data, by length mod 4 (1 is never valid)
_SPARE_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def seal(keyring: Keyring, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt under the primary key with a fresh random 96-bit nonce."""
    header = sealed_header(keyring.primary)
    nonce = secrets.token_bytes(NONCE_SIZE)
    body = nonce + _cipher(keyring.primary_key).encrypt(nonce, plaintext, header + aad)
    return header + base64.urlsafe_b64encode(body).rstrip(b"=")


def open_sealed(keyring: Keyring, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt a sealed value; `UnknownKey` if its key is not in the keyring, `CryptoError`
    if it is malformed, tampered with, or was sealed under another AAD."""
    parsed = _parsed.get(sealed)
    if parsed is None:
        key_id, body = _parse(sealed)
        header = sealed_header(key_id)
        parsed = key_id, header, body[:NONCE_SIZE], body[NONCE_SIZE:]
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[sealed] = parsed
    key_id, header, nonce, ciphertext = parsed
    key = keyring.key(key_id)
    try:
        return _cipher(key).decrypt(nonce, ciphertext, header + aad)
    except InvalidTag:
        raise CryptoError(
            "sealed value failed authentication (tampered, or sealed for another record)"
        ) from None


_ciphers: dict[bytes, AESGCM] = {}
# The hot path opens the same cached (sealed) record over and over: remember how its text
# splits and decodes. What is kept is still ciphertext; decryption runs on every open.
_parsed: dict[bytes, tuple[str, bytes, bytes, bytes]] = {}  # key id, header, nonce, ciphertext
_PARSED_MAX = 4096


def _cipher(key: bytes) -> AESGCM:
    # building the cipher costs about as much as decrypting a small record
    cipher = _ciphers.get(key)
    if cipher is None:
        if len(_ciphers) > 64:
            _ciphers.clear()
        cipher = _ciphers[key] = AESGCM(key)
    return cipher


def decode_base64url(encoded: bytes) -> bytes:
    """Strict base64url without padding, or `ValueError` (whose message quotes nothing).

    Only the canonical spelling is accepted: a lenient decoder skips junk, padding and
    whitespace and ignores the spare bits of the last character, so one value would have
    many spellings, and a flipped byte or appended text could go unnoticed."""
    spare = _SPARE_BITS.get(len(encoded) % 4)
    if spare is None or b"+" in encoded or b"/" in encoded or b"=" in encoded:
        raise ValueError("data is not base64url")
    if spare and encoded and _ALPHABET.find(encoded[-1:]) & spare:
        raise ValueError("non-canonical base64url")
    padded = encoded.translate(_TO_STANDARD) + b"=" * (-len(encoded) % 4)
    try:
        return binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValueError("data is not base64url") from None


def key_id_of(sealed: bytes) -> str:
    """The id of the key that sealed this value (no decryption)."""
    return _parse(sealed)[0]


def sealed_header(key_id: str) -> bytes:
    """What every value sealed under `key_id` starts with (`value.startswith(...)` tells
    whether a value is under a key without parsing it)."""
    return f"{FORMAT_VERSION}.{key_id}.".encode("ascii")


def named_key_id(sealed: bytes) -> str | None:
    """The key id a value's header names, or None if it has no sealed header. Reads the
    header only: unlike `key_id_of` it does not decode the body, which would dominate a pass
    that only counts records per key (`broker keys status`)."""
    version, _, rest = sealed.partition(b".")
    raw_id, dot, _ = rest.partition(b".")
    key_id = raw_id.decode("ascii", errors="replace")
    if version != _VERSION or not dot or not valid_key_id(key_id):
        return None
    return key_id


def needs_rewrap(keyring: Keyring, sealed: bytes) -> bool:
    """True when the value is not sealed under the current primary key."""
    return key_id_of(sealed) != keyring.primary


def _parse(sealed: bytes) -> tuple[str, bytes]:
    if not isinstance(sealed, bytes):
        raise CryptoError("sealed value must be bytes")
    parts = sealed.split(b".", 2)
    if len(parts) != 3:
        raise CryptoError("malformed sealed value (expected <version>.<key id>.<data>)")
    version, raw_id, encoded = parts
    if version != _VERSION:
        raise CryptoError("unsupported sealed value format version")
    key_id = raw_id.decode("ascii", errors="replace")
    if not valid_key_id(key_id):
        raise CryptoError("malformed sealed value (invalid key id)")
    try:
        body = decode_base64url(encoded)
    except ValueError as exc:
        raise CryptoError(f"malformed sealed value ({exc})") from None
    if len(body) < NONCE_SIZE + TAG_SIZE:
        raise CryptoError("malformed sealed value (too short)")
    return key_id, body
