"""standard_webhooks (and Svix's header names), signed by the official `standardwebhooks`
library (`Webhook.sign`)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from broker.webhooks import (
    InvalidSignature,
    MalformedHeader,
    MissingHeader,
    TimestampOutOfTolerance,
    UnusableSecret,
    Verified,
    WebhookError,
    verify,
)
from tests.webhooks.support import BODY, CANARY, NOW, assert_clean, refused

SECRET = "whsec_" + base64.b64encode(b"new-key-" * 4).decode()
OLD = "whsec_" + base64.b64encode(b"old-key-" * 4).decode()
CANARY_SECRET = "whsec_" + base64.b64encode(CANARY.encode()).decode()
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def sign(secret: str, t: int = NOW, msg_id: str = MSG_ID, body: bytes = BODY) -> str:
    when = datetime.fromtimestamp(t, tz=UTC)
    return Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=body.decode())


def headers_for(
    secret: str, t: int = NOW, prefix: str = "webhook-", msg_id: str = MSG_ID
) -> dict[str, str]:
    return {
        f"{prefix}id": msg_id,
        f"{prefix}timestamp": str(t),
        f"{prefix}signature": sign(secret, t, msg_id),
    }


def check(
    headers: dict[str, str], secrets: list[str] | None = None, body: bytes = BODY
) -> Verified:
    return verify(
        "standard_webhooks", body=body, headers=headers, secrets=secrets or [SECRET], now=NOW
    )


def test_valid_delivery_verifies_and_its_id_is_webhook_id() -> None:
    result = check(headers_for(SECRET))
    assert result.delivery_id == MSG_ID
    assert result.timestamp == NOW
    assert result.secret_index == 0


def test_the_spec_example_signature_format_is_what_we_parse() -> None:
    assert sign(SECRET).startswith("v1,")


def test_svix_header_names_are_accepted() -> None:
    assert check(headers_for(SECRET, prefix="svix-")).delivery_id == MSG_ID


def test_a_secret_without_the_whsec_prefix_is_the_same_key() -> None:
    raw = SECRET.removeprefix("whsec_")
    assert check(headers_for(SECRET), [raw])
    assert check(headers_for(raw), [SECRET])  # the library treats both alike too
    assert check(headers_for(SECRET), [raw.rstrip("=")])  # unpadded, as the library allows


def test_tampered_body_is_refused() -> None:
    with pytest.raises(InvalidSignature) as excinfo:
        check(headers_for(SECRET), body=BODY.replace(b"evt_1", b"evt_2"))
    refused(excinfo, "invalid_signature", 401)


@pytest.mark.parametrize(("field", "value"), [("id", "msg_other"), ("timestamp", str(NOW + 1))])
def test_id_and_timestamp_are_signed(field: str, value: str) -> None:
    headers = headers_for(SECRET)
    headers[f"webhook-{field}"] = value
    with pytest.raises(InvalidSignature):
        check(headers)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        check(headers_for("whsec_" + base64.b64encode(b"x" * 32).decode()))


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_timestamp_beyond_tolerance_either_way_is_refused(offset: int) -> None:
    with pytest.raises(TimestampOutOfTolerance) as excinfo:
        check(headers_for(SECRET, NOW + offset))
    refused(excinfo, "timestamp_out_of_tolerance", 401)


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_at_the_edge_of_tolerance_passes(offset: int) -> None:
    assert check(headers_for(SECRET, NOW + offset)).timestamp == NOW + offset


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_400(drop: str) -> None:
    headers = headers_for(SECRET)
    del headers[drop]
    with pytest.raises(MissingHeader) as excinfo:
        check(headers)
    refused(excinfo, "missing_header", 400)
    assert excinfo.value.header == drop


def test_headers_of_the_two_families_are_not_mixed() -> None:
    mixed = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(NOW),
        "svix-signature": sign(SECRET),
    }
    with pytest.raises(MissingHeader) as excinfo:
        check(mixed)
    assert excinfo.value.header == "webhook-signature"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signature", "v1"),
        ("signature", "v1=" + base64.b64encode(b"\0" * 32).decode()),
        ("signature", "v1,not*base64"),
        ("signature", "v1," + base64.b64encode(b"short").decode()),
        ("timestamp", "yesterday"),
        ("timestamp", f"{NOW}.5"),
        ("timestamp", f"-{NOW}"),
    ],
)
def test_malformed_header_is_400(field: str, value: str) -> None:
    headers = headers_for(SECRET)
    headers[f"webhook-{field}"] = value
    with pytest.raises(MalformedHeader) as excinfo:
        check(headers)
    refused(excinfo, "malformed_header", 400)


def test_other_signature_versions_are_ignored() -> None:
    headers = headers_for(SECRET)
    ed25519 = "v1a," + base64.b64encode(b"\1" * 64).decode()
    headers["webhook-signature"] = f"{ed25519} {headers['webhook-signature']}"
    assert check(headers)
    headers["webhook-signature"] = ed25519  # nothing we can check: refused, never a pass
    with pytest.raises(InvalidSignature):
        check(headers)


def test_any_of_several_signatures_may_match() -> None:
    headers = headers_for(SECRET)
    bogus = "v1," + base64.b64encode(b"\0" * 32).decode()
    headers["webhook-signature"] = f"{bogus}  {headers['webhook-signature']} {bogus}"
    assert check(headers)


def test_both_secrets_verify_during_a_roll() -> None:
    both = headers_for(SECRET)
    both["webhook-signature"] += " " + sign(OLD)  # what a sender emits while rolling
    assert check(both, [SECRET])
    assert check(both, [OLD])
    for signer in (SECRET, OLD):
        assert check(headers_for(signer), [OLD, SECRET])


def test_old_secret_verifies_while_the_new_one_is_listed_first() -> None:
    assert check(headers_for(OLD), [SECRET, OLD]).secret_index == 1


@pytest.mark.parametrize("case", [str.upper, str.title])
def test_header_names_are_case_insensitive(case: Callable[[str], str]) -> None:
    headers = {case(name): value for name, value in headers_for(SECRET).items()}
    assert check(headers).delivery_id == MSG_ID


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "plain text secret"])
def test_a_secret_that_is_not_base64_is_unusable(secret: str) -> None:
    with pytest.raises(UnusableSecret) as excinfo:
        check(headers_for(SECRET), [SECRET, secret])
    refused(excinfo, "unusable_webhook_secret", 500)
    assert "#1" in str(excinfo.value)  # which one, by position: never the value
    if secret != "whsec_":
        assert secret.removeprefix("whsec_") not in str(excinfo.value)


def test_no_error_leaks_the_secret_or_expected_signature() -> None:
    key = base64.b64decode(CANARY_SECRET.removeprefix("whsec_"))
    good = headers_for(CANARY_SECRET)
    cases: list[tuple[dict[str, str], bytes]] = [
        (good, BODY + b"x"),
        (headers_for(CANARY_SECRET, NOW - 999), BODY),
        (headers_for(SECRET), BODY),
        ({**good, "webhook-signature": "v1,@@"}, BODY),
        ({"webhook-id": MSG_ID}, BODY),
    ]
    for headers, body in cases:
        with pytest.raises(WebhookError) as excinfo:
            verify(
                "standard_webhooks", body=body, headers=headers, secrets=[CANARY_SECRET], now=NOW
            )
        for t in (NOW, NOW - 999):
            message = f"{MSG_ID}.{t}.".encode() + body
            assert_clean(excinfo.value, CANARY_SECRET, message)
            assert_clean(excinfo.value, key.decode(), message)
