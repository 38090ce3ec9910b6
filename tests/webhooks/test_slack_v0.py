"""slack_v0, signed by `slack_sdk.signature.SignatureVerifier` (Slack's own SDK)."""

from __future__ import annotations

import pytest
from slack_sdk.signature import Clock, SignatureVerifier

from broker.webhooks import (
    InvalidSignature,
    MalformedHeader,
    MissingHeader,
    TimestampOutOfTolerance,
    Verified,
    WebhookError,
    verify,
)
from tests.webhooks.support import CANARY, NOW, assert_clean, refused

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OLD = "1e4a0e3b7d2c4f5a6b7c8d9e0f1a2b3c"
# slash commands arrive form-encoded: the raw bytes are what Slack signed
BODY = b"token=xyz&team_id=T1&command=%2Fweather&text=94070&user_name=caf%C3%A9"


class FixedClock(Clock):
    def now(self) -> float:
        return float(NOW)


def headers_for(secret: str, t: int = NOW, body: bytes = BODY) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(t), body=body)
    assert signature is not None
    return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(t)}


def check(
    headers: dict[str, str], secrets: list[str] | None = None, body: bytes = BODY
) -> Verified:
    return verify("slack_v0", body=body, headers=headers, secrets=secrets or [SECRET], now=NOW)


def test_valid_request_verifies() -> None:
    headers = headers_for(SECRET)
    assert SignatureVerifier(SECRET, FixedClock()).is_valid_request(BODY, headers)
    result = check(headers)
    assert result.timestamp == NOW
    assert result.secret_index == 0
    assert result.delivery_id.startswith("sha256:")
    assert check(headers_for(SECRET, NOW + 1)).delivery_id != result.delivery_id


def test_tampered_body_is_refused() -> None:
    with pytest.raises(InvalidSignature) as excinfo:
        check(headers_for(SECRET), body=BODY.replace(b"94070", b"94071"))
    refused(excinfo, "invalid_signature", 401)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        check(headers_for("someone-elses-signing-secret"))


def test_timestamp_header_is_signed() -> None:
    headers = headers_for(SECRET)
    headers["X-Slack-Request-Timestamp"] = str(NOW + 1)
    with pytest.raises(InvalidSignature):
        check(headers)


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_timestamp_beyond_tolerance_either_way_is_refused(offset: int) -> None:
    headers = headers_for(SECRET, NOW + offset)
    assert not SignatureVerifier(SECRET, FixedClock()).is_valid_request(BODY, headers)
    with pytest.raises(TimestampOutOfTolerance) as excinfo:
        check(headers)
    refused(excinfo, "timestamp_out_of_tolerance", 401)


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_at_the_edge_of_tolerance_passes(offset: int) -> None:
    assert check(headers_for(SECRET, NOW + offset)).timestamp == NOW + offset


@pytest.mark.parametrize("drop", ["X-Slack-Signature", "X-Slack-Request-Timestamp"])
def test_missing_header_is_400(drop: str) -> None:
    headers = headers_for(SECRET)
    del headers[drop]
    with pytest.raises(MissingHeader) as excinfo:
        check(headers)
    refused(excinfo, "missing_header", 400)
    assert excinfo.value.header == drop


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Slack-Signature", "v1=" + "0" * 64),
        ("X-Slack-Signature", "0" * 64),
        ("X-Slack-Signature", "v0=nothex"),
        ("X-Slack-Request-Timestamp", "soon"),
        ("X-Slack-Request-Timestamp", f"{NOW}.0"),
        ("X-Slack-Request-Timestamp", f"0{NOW}"),
    ],
)
def test_malformed_header_is_400(name: str, value: str) -> None:
    headers = headers_for(SECRET)
    headers[name] = value
    with pytest.raises(MalformedHeader) as excinfo:
        check(headers)
    refused(excinfo, "malformed_header", 400)


def test_both_secrets_verify_during_a_roll() -> None:
    for signer in (SECRET, OLD):
        assert check(headers_for(signer), [OLD, SECRET])


def test_old_secret_verifies_while_the_new_one_is_listed_first() -> None:
    assert check(headers_for(OLD), [SECRET, OLD]).secret_index == 1


def test_header_names_are_case_insensitive() -> None:
    lower = {name.lower(): value for name, value in headers_for(SECRET).items()}
    upper = {name.upper(): value for name, value in headers_for(SECRET).items()}
    assert check(lower) == check(upper)


def test_no_error_leaks_the_secret_or_expected_signature() -> None:
    good = headers_for(CANARY)
    cases: list[tuple[dict[str, str], bytes]] = [
        (good, BODY + b"x"),
        (headers_for(CANARY, NOW - 999), BODY),
        (headers_for("other"), BODY),
        ({**good, "X-Slack-Signature": "v0=zz"}, BODY),
        ({"X-Slack-Signature": good["X-Slack-Signature"]}, BODY),
    ]
    for headers, body in cases:
        with pytest.raises(WebhookError) as excinfo:
            verify("slack_v0", body=body, headers=headers, secrets=[CANARY], now=NOW)
        for t in (NOW, NOW - 999):
            assert_clean(excinfo.value, CANARY, f"v0:{t}:".encode() + body)
