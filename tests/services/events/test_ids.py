"""Event ids, payload times, the signing secret and the signature, with `standardwebhooks`
(the scheme's own library) as the oracle."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from broker.config import events_signing_key, load_settings
from broker.errors import ConfigError
from broker.services import events
from broker.services.events import sign

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_ids_sort_by_creation_time_and_are_unique() -> None:
    times = [1_700_000_000.0 + i * 0.0004 for i in range(5000)]  # several per millisecond
    ids = [events.new_event_id(t) for t in times]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(events.is_event_id(i) for i in ids)
    assert events.id_time_ms(ids[0]) == 1_700_000_000_000
    assert events.new_event_id(1_700_000_002.5) > ids[-1]


def test_a_streams_ids_grow_even_when_this_clock_is_behind() -> None:
    ahead = events.new_event_id(1_700_000_050.0)  # written by a replica whose clock runs ahead
    behind = events.new_event_id(1_700_000_000.0, after=ahead)
    assert behind > ahead
    assert events.new_event_id(1_700_000_000.0, after=behind) > behind


def test_ids_from_two_processes_do_not_collide() -> None:
    script = (
        "from broker.services import events\n"
        "print(' '.join(events.new_event_id(1700000000.0) for _ in range(1000)))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert not set(runs[0]) & set(runs[1])  # same millisecond, same counters: replica part


def test_times_are_iso_utc_with_milliseconds() -> None:
    assert events.iso_ms(1_700_000_000.123) == "2023-11-14T22:13:20.123Z"
    assert events.iso_ms(0) == "1970-01-01T00:00:00.000Z"


def test_the_signature_verifies_with_standardwebhooks() -> None:
    body = json.dumps({"id": "evt_1", "type": "connection.created"}).encode()
    msg_id, timestamp = "evt_00000000000001234abcd00000001", int(time.time())
    key = events_signing_key(SECRET)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
    }
    assert Webhook(SECRET).verify(body, headers)["type"] == "connection.created"
    # the same key given without the prefix, as the library also takes it
    assert Webhook(SECRET.removeprefix("whsec_")).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    other = "whsec_" + base64.b64encode(b"another key, 32 bytes long......").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


def test_events_secret_rules() -> None:
    bare = SECRET.removeprefix("whsec_")
    assert events_signing_key(bare) == events_signing_key(SECRET)
    assert events_signing_key(bare.rstrip("=")) == events_signing_key(SECRET)
    load_settings(events_url="https://platform.example.com/events", events_secret=bare)
    for bad in ("whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ConfigError, match="BROKER_EVENTS_SECRET") as caught:
            load_settings(events_secret=bad)
        assert bad not in str(caught.value)
    with pytest.raises(ConfigError, match="needs BROKER_EVENTS_SECRET"):
        load_settings(events_url="https://platform.example.com/events")
