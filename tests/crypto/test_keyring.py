from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from broker.crypto import KEY_SIZE, Keyring, derive_key, new_key_id, save_keyring, valid_key_id
from broker.errors import ConfigError, UnknownKey

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
B64_A = base64.b64encode(KEY_A).decode()
B64_B = base64.b64encode(KEY_B).decode()


def _assert_no_key_material(message: str, *keys: bytes) -> None:
    for key in keys:
        for spelling in (
            base64.b64encode(key).decode(),
            base64.urlsafe_b64encode(key).decode(),
            key.hex(),
            repr(key),
        ):
            assert spelling not in message
            assert spelling[:16] not in message


def test_json_round_trip() -> None:
    ring = Keyring(keys={"k1": KEY_A, "k2": KEY_B}, primary="k2")
    again = Keyring.from_json(ring.to_json())
    assert again == ring
    assert again.keys["k1"] == KEY_A
    assert again.primary == "k2"
    assert json.loads(ring.to_json()) == {"primary": "k2", "keys": {"k1": B64_A, "k2": B64_B}}


def test_load_and_save(tmp_path: Path) -> None:
    ring = Keyring.generate()
    path = tmp_path / "keyring.json"
    save_keyring(path, ring)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Keyring.load(path) == ring
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]

    rotated = ring.with_key("k2").promoted("k2")
    save_keyring(path, rotated)
    assert Keyring.load(path) == rotated
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_load_warns_when_others_can_read_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    ring = Keyring(keys={"k1": KEY_A}, primary="k1")
    path = tmp_path / "keyring.json"
    save_keyring(path, ring)
    os.chmod(path, mode)
    with caplog.at_level(logging.WARNING, logger="broker"):
        assert Keyring.load(path) == ring
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in record.getMessage() and f"{mode:04o}" in record.getMessage()
    _assert_no_key_material(caplog.text, KEY_A)


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=oct)
def test_load_is_quiet_about_a_private_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path = tmp_path / "keyring.json"
    save_keyring(path, Keyring(keys={"k1": KEY_A}, primary="k1"))
    os.chmod(path, mode)
    with caplog.at_level(logging.DEBUG):
        Keyring.load(path)
    assert caplog.records == []


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read keyring file"):
        Keyring.load(tmp_path / "nope.json")


MALFORMED = [
    ("{not json " + B64_A, "not valid JSON"),
    ("[" * 100_000, "not valid JSON"),  # deeper than the decoder goes: RecursionError
    (json.dumps([B64_A]), "must be a JSON object"),
    (json.dumps({"primary": "k1", "keys": {"k1": B64_A}, "extra": B64_B}), "unknown fields"),
    (json.dumps({"keys": {"k1": B64_A}}), '"primary" must be a string'),
    (json.dumps({"primary": "k1", "keys": [B64_A]}), '"keys" must be an object'),
    (json.dumps({"primary": "k1", "keys": {}}), "no keys"),
    (json.dumps({"primary": "k9", "keys": {"k1": B64_A}}), "'k9' is not among its keys"),
    (json.dumps({"primary": B64_A, "keys": {"k1": B64_A}}), "primary is not a valid key id"),
    (
        json.dumps({"primary": "k1", "keys": {"k1": base64.b64encode(KEY_A[:16]).decode()}}),
        "16 bytes, not 32",
    ),
    (
        json.dumps({"primary": "k1", "keys": {"k1": base64.b64encode(KEY_A + b"x").decode()}}),
        "33 bytes, not 32",
    ),
    (json.dumps({"primary": "k1", "keys": {"k1": B64_A[:-2] + "!="}}), "not valid standard"),
    (
        json.dumps({"primary": "k1", "keys": {"k1": base64.urlsafe_b64encode(KEY_B).decode()}}),
        "not valid standard",
    ),
    (json.dumps({"primary": "k1", "keys": {"k1": "AA=="}}), "decodes to 1 byte, not 32"),
    (json.dumps({"primary": "k1", "keys": {"k1": 12345}}), "must be a base64 string"),
    ('{"primary": "k1", "keys": {"k1": "' + B64_A + '", "k1": "' + B64_B + '"}}', "repeats"),
    (json.dumps({"primary": "k.1", "keys": {"k.1": B64_A}}), "key #1 has an invalid id"),
    (json.dumps({"primary": "k1", "keys": {"k1": B64_A, B64_B: B64_A}}), "#2 has an invalid"),
    (json.dumps({"primary": "", "keys": {"": B64_A}}), "invalid id"),
    (json.dumps({"primary": "k" * 33, "keys": {"k" * 33: B64_A}}), "invalid id"),
]


# Test ids name the problem, not the input (which holds key material).
@pytest.mark.parametrize(("text", "problem"), [pytest.param(*c, id=c[1]) for c in MALFORMED])
def test_malformed_keyring(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Keyring.from_json(text)
    message = str(caught.value)
    assert problem in message
    _assert_no_key_material(message, KEY_A, KEY_B)
    # No chained exception (e.g. a JSON decoder error) quoting the input either.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_repr_hides_keys() -> None:
    ring = Keyring(keys={"k1": KEY_A}, primary="k1")
    assert repr(ring) == "Keyring(primary='k1', ids=['k1'])"
    _assert_no_key_material(repr(ring) + str(ring), KEY_A)


def test_keyring_is_immutable() -> None:
    source = {"k1": KEY_A}
    ring = Keyring(keys=source, primary="k1")
    source["k2"] = KEY_B
    assert ring.ids == ["k1"]
    with pytest.raises(TypeError):
        ring.keys["k3"] = KEY_B  # type: ignore[index]
    with pytest.raises(AttributeError):
        ring.primary = "k2"  # type: ignore[misc]
    assert hash(ring) == hash(Keyring(keys={"k1": KEY_A}, primary="k1"))


def test_generate() -> None:
    ring = Keyring.generate()
    assert valid_key_id(ring.primary)
    assert len(ring.primary_key) == KEY_SIZE
    assert Keyring.generate().primary_key != ring.primary_key
    assert Keyring.generate("main").ids == ["main"]
    with pytest.raises(ConfigError):
        Keyring.generate("bad.id")


def test_new_key_id_is_sortable_and_valid() -> None:
    key_id = new_key_id()
    assert valid_key_id(key_id)
    prefix, date, rand = key_id.split("-")
    assert (prefix, len(date), len(rand)) == ("k", 8, 6)
    assert date.isdigit()


def test_rotation_steps() -> None:
    ring = Keyring(keys={"k1": KEY_A}, primary="k1")
    added = ring.with_key("k2", KEY_B)
    assert added.primary == "k1"
    assert added.ids == ["k1", "k2"]
    assert ring.ids == ["k1"]  # the original is unchanged
    promoted = added.promoted("k2")
    assert promoted.primary == "k2"
    retired = promoted.without("k1")
    assert retired.ids == ["k2"]
    assert retired.primary_key == KEY_B
    assert len(ring.with_key("k3").key("k3")) == KEY_SIZE


def test_rotation_step_errors() -> None:
    ring = Keyring(keys={"k1": KEY_A, "k2": KEY_B}, primary="k1")
    with pytest.raises(ConfigError, match="already has a key 'k2'"):
        ring.with_key("k2")
    with pytest.raises(ConfigError, match="not 32 bytes"):
        ring.with_key("k3", b"short")
    with pytest.raises(ConfigError, match="invalid id"):
        ring.with_key("k.3")
    with pytest.raises(ConfigError, match="cannot promote 'k9'"):
        ring.promoted("k9")
    with pytest.raises(ConfigError, match="it is the primary"):
        ring.without("k1")
    with pytest.raises(ConfigError, match="cannot retire 'k9'"):
        ring.without("k9")
    with pytest.raises(UnknownKey) as caught:
        ring.key("k9")
    assert caught.value.key_id == "k9"


def test_derive_key() -> None:
    ring = Keyring(keys={"k1": KEY_A, "k2": KEY_B}, primary="k1")
    token_k1 = derive_key(ring, "k1", "runtime-token")
    assert len(token_k1) == 32
    assert derive_key(ring, "k1", "runtime-token") == token_k1
    assert derive_key(ring, "k1", b"runtime-token") == token_k1
    reloaded = Keyring.from_json(ring.to_json())
    assert derive_key(reloaded, "k1", "runtime-token") == token_k1
    assert derive_key(ring, "k1", "other-purpose") != token_k1
    assert derive_key(ring, "k2", "runtime-token") != token_k1
    assert token_k1 not in (KEY_A, KEY_B)
    with pytest.raises(UnknownKey):
        derive_key(ring, "k9", "runtime-token")
