"""Barrier tests in the spirit of Vault's: confidentiality, integrity, binding, rotation."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from broker.crypto import (
    Keyring,
    key_id_of,
    named_key_id,
    needs_rewrap,
    open_sealed,
    seal,
    sealed_header,
)
from broker.errors import CryptoError, UnknownKey

CANARY = b"canary-7f3a9c-secret-value"
AAD_A = b"{conn_a}:record"
AAD_B = b"{conn_b}:record"
KEY = bytes(range(32))


@pytest.fixture
def ring() -> Keyring:
    return Keyring(keys={"k1": KEY}, primary="k1")


def _assert_clean(exc: BaseException) -> None:
    text = str(exc) + repr(exc)
    assert CANARY.decode() not in text
    assert KEY.hex() not in text
    assert base64.b64encode(KEY).decode() not in text


def test_round_trip(ring: Keyring) -> None:
    for plaintext in (CANARY, b"", b"\x00" * 1000, "héllo".encode()):
        assert open_sealed(ring, seal(ring, plaintext, AAD_A), AAD_A) == plaintext


def test_format(ring: Keyring) -> None:
    sealed = seal(ring, CANARY, AAD_A)
    version, key_id, body = sealed.split(b".")
    assert (version, key_id) == (b"1", b"k1")
    assert sealed.decode("ascii") == sealed.decode("utf-8")
    assert b"=" not in body
    raw = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
    assert len(raw) == 12 + len(CANARY) + 16
    assert key_id_of(sealed) == "k1"


def test_sealed_bytes_hide_the_plaintext(ring: Keyring) -> None:
    sealed = seal(ring, CANARY, AAD_A)
    assert CANARY not in sealed
    assert CANARY not in base64.urlsafe_b64decode(sealed.split(b".")[2] + b"==")
    assert base64.b64encode(CANARY)[:12] not in sealed


def test_two_seals_differ(ring: Keyring) -> None:
    first, second = seal(ring, CANARY, AAD_A), seal(ring, CANARY, AAD_A)
    assert first != second
    # Distinct nonces, not just distinct encodings.
    assert first.split(b".")[2][:16] != second.split(b".")[2][:16]


def test_flipping_any_byte_fails(ring: Keyring) -> None:
    sealed = seal(ring, CANARY, AAD_A)
    for position in range(len(sealed)):
        for mask in (0x01, 0x20, 0x80):
            tampered = bytearray(sealed)
            tampered[position] ^= mask
            with pytest.raises(CryptoError) as caught:
                open_sealed(ring, bytes(tampered), AAD_A)
            _assert_clean(caught.value)


def test_wrong_aad_fails(ring: Keyring) -> None:
    sealed = seal(ring, CANARY, AAD_A)
    for aad in (AAD_B, b"", AAD_A + b"x", AAD_A[:-1]):
        with pytest.raises(CryptoError) as caught:
            open_sealed(ring, sealed, aad)
        _assert_clean(caught.value)


def test_wrong_key_with_same_id_fails(ring: Keyring) -> None:
    sealed = seal(ring, CANARY, AAD_A)
    other = Keyring(keys={"k1": bytes(32)}, primary="k1")
    with pytest.raises(CryptoError):
        open_sealed(other, sealed, AAD_A)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: b"", id="empty"),
        pytest.param(lambda s: s[:-1], id="truncated-by-one"),
        pytest.param(lambda s: s[: len(b"1.k1.") + 20], id="shorter-than-nonce-and-tag"),
        pytest.param(lambda s: s[: len(b"1.k1.")], id="no-body"),
        pytest.param(lambda s: s[: len(b"1.k1")], id="no-body-separator"),
        pytest.param(lambda s: b"2" + s[1:], id="version-2"),
        pytest.param(lambda s: b"0" + s[1:], id="version-0"),
        pytest.param(lambda s: s[2:], id="no-version"),
        pytest.param(lambda s: b"v1" + s[1:], id="version-v1"),
        pytest.param(lambda s: s + b"=", id="padding-added"),
        pytest.param(lambda s: s + b"AAAA", id="extended"),
        pytest.param(lambda s: s.replace(b".", b"", 1), id="dot-removed"),
        pytest.param(lambda s: s.replace(b"k1", b"k/1"), id="bad-key-id"),
        pytest.param(lambda s: s.replace(b".k1.", b"..", 1), id="empty-key-id"),
        pytest.param(lambda s: s[:10] + b"+" + s[11:], id="standard-base64-char"),
        pytest.param(lambda s: s[:10] + b"\xff" + s[11:], id="non-ascii"),
        pytest.param(lambda s: CANARY, id="plaintext-stored-unsealed"),
    ],
)
def test_malformed_fails(ring: Keyring, mangle: Callable[[bytes], bytes]) -> None:
    sealed = seal(ring, CANARY, AAD_A)
    bad = mangle(sealed)
    with pytest.raises(CryptoError) as caught:
        open_sealed(ring, bad, AAD_A)
    _assert_clean(caught.value)
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_non_bytes_fails(ring: Keyring) -> None:
    with pytest.raises(CryptoError):
        open_sealed(ring, "1.k1.AAAA", AAD_A)  # type: ignore[arg-type]


def test_unknown_key_id(ring: Keyring) -> None:
    other = Keyring(keys={"k9": bytes(32)}, primary="k9")
    sealed = seal(other, CANARY, AAD_A)
    with pytest.raises(UnknownKey) as caught:
        open_sealed(ring, sealed, AAD_A)
    assert caught.value.key_id == "k9"
    assert "'k9'" in str(caught.value)
    _assert_clean(caught.value)


def test_key_id_of_rejects_malformed() -> None:
    with pytest.raises(CryptoError):
        key_id_of(b"not sealed")
    with pytest.raises(CryptoError):
        key_id_of(b"2.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")


def test_header_names_the_key_without_decoding(ring: Keyring) -> None:
    sealed = seal(ring, CANARY, AAD_A)
    assert sealed.startswith(sealed_header("k1"))
    assert not sealed.startswith(sealed_header("k"))  # the dot ends the id
    assert named_key_id(sealed) == key_id_of(sealed) == "k1"
    # only the header is read: a damaged body still names its key (opening it fails)
    assert named_key_id(sealed[:-4] + b"!!!!") == "k1"
    for junk in (b"", b"plain", b"1.k1", b"2.k1.AAAA", b"1.bad id.AAAA", b"1..AAAA"):
        assert named_key_id(junk) is None


def test_rotation(ring: Keyring) -> None:
    old = seal(ring, CANARY, AAD_A)
    rotated = ring.with_key("k2").promoted("k2")
    assert open_sealed(rotated, old, AAD_A) == CANARY
    assert needs_rewrap(rotated, old)
    new = seal(rotated, CANARY, AAD_A)
    assert key_id_of(new) == "k2"
    assert not needs_rewrap(rotated, new)
    assert open_sealed(rotated, new, AAD_A) == CANARY

    retired = rotated.without("k1")
    assert open_sealed(retired, new, AAD_A) == CANARY
    with pytest.raises(UnknownKey) as caught:
        open_sealed(retired, old, AAD_A)
    assert caught.value.key_id == "k1"
    assert "'k1'" in str(caught.value)


def test_relabelled_key_id_fails() -> None:
    # Both keys equal: only the authenticated header tells k1 and k2 apart.
    ring = Keyring(keys={"k1": KEY, "k2": KEY}, primary="k1")
    sealed = seal(ring, CANARY, AAD_A)
    with pytest.raises(CryptoError):
        open_sealed(ring, sealed.replace(b".k1.", b".k2.", 1), AAD_A)
