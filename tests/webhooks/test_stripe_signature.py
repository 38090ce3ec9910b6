"""stripe_signature, signed by the official `stripe` library (its `WebhookSignature`)."""

from __future__ import annotations

import pytest
from stripe import WebhookSignature

from broker.webhooks import (
    InvalidSignature,
    MalformedHeader,
    MissingHeader,
    TimestampOutOfTolerance,
    Verified,
    WebhookError,
    verify,
)
from tests.webhooks.support import BODY, CANARY, NOW, assert_clean, refused

SECRET = "whsec_test_new_0123456789abcdef"
OLD = "whsec_test_old_fedcba9876543210"


def header(secret: str, t: int = NOW, body: bytes = BODY) -> str:
    return str(WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=t))


def v1(secret: str, t: int = NOW) -> str:
    return header(secret, t).split(",")[1]


def check(value: str, secrets: list[str] | None = None, body: bytes = BODY) -> Verified:
    return verify(
        "stripe_signature",
        body=body,
        headers={"Stripe-Signature": value},
        secrets=secrets or [SECRET],
        now=NOW,
    )


def test_valid_delivery_verifies() -> None:
    result = verify(
        "stripe_signature",
        body=BODY,
        headers={"Stripe-Signature": header(SECRET)},
        secrets=[SECRET],
        now=NOW,
    )
    assert result.scheme == "stripe_signature"
    assert result.timestamp == NOW
    assert result.secret_index == 0
    assert result.delivery_id.startswith("sha256:")


def test_the_oracle_agrees_on_what_we_accept() -> None:
    assert WebhookSignature.verify_header(BODY, header(SECRET), SECRET)
    check(header(SECRET))


def test_tampered_body_is_refused() -> None:
    with pytest.raises(InvalidSignature) as excinfo:
        check(header(SECRET), body=BODY.replace(b"evt_1", b"evt_2"))
    refused(excinfo, "invalid_signature", 401)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        check(header("whsec_someone_else"))


@pytest.mark.parametrize("offset", [-301, 301, -10_000, 10_000])
def test_timestamp_beyond_tolerance_either_way_is_refused(offset: int) -> None:
    with pytest.raises(TimestampOutOfTolerance) as excinfo:
        check(header(SECRET, t=NOW + offset))
    refused(excinfo, "timestamp_out_of_tolerance", 401)


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_at_the_edge_of_tolerance_passes(offset: int) -> None:
    assert check(header(SECRET, t=NOW + offset))


def test_tolerance_is_a_parameter() -> None:
    result = verify(
        "stripe_signature",
        body=BODY,
        headers={"Stripe-Signature": header(SECRET, t=NOW - 3600)},
        secrets=[SECRET],
        now=NOW,
        tolerance=3600,
    )
    assert result.timestamp == NOW - 3600


def test_forged_old_delivery_is_a_bad_signature_not_a_stale_one() -> None:
    with pytest.raises(InvalidSignature):
        check(header("whsec_forger", t=NOW - 10_000))


@pytest.mark.parametrize("headers", [{}, {"Stripe-Signature": ""}, {"X-Other": "t=1"}])
def test_missing_header_is_400(headers: dict[str, str]) -> None:
    with pytest.raises(MissingHeader) as excinfo:
        verify("stripe_signature", body=BODY, headers=headers, secrets=[SECRET], now=NOW)
    refused(excinfo, "missing_header", 400)
    assert excinfo.value.header == "Stripe-Signature"


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        f"{v1(SECRET)}",  # no t=
        f"t=abc,{v1(SECRET)}",
        f"t=-{NOW},{v1(SECRET)}",
        f"t={NOW}.5,{v1(SECRET)}",
        f"t={NOW},t={NOW},{v1(SECRET)}",
        f"t={NOW},v1=zz",
        f"t={NOW},v1={'a' * 63}",
        f"t={NOW},{v1(SECRET)},stray",
    ],
)
def test_malformed_header_is_400(value: str) -> None:
    with pytest.raises(MalformedHeader) as excinfo:
        check(value)
    refused(excinfo, "malformed_header", 400)


def test_header_without_a_v1_signature_is_refused() -> None:
    v0 = v1(SECRET).replace("v1=", "v0=")  # test-mode fake scheme: ignored, never trusted
    with pytest.raises(InvalidSignature):
        check(f"t={NOW},{v0}")


def test_any_of_several_v1_signatures_may_match() -> None:
    bogus = "v1=" + "0" * 64
    result = check(f"t={NOW},{bogus},{v1(SECRET)},v0={'1' * 64}")
    assert result.timestamp == NOW


def test_both_secrets_verify_during_a_roll() -> None:
    both = f"t={NOW},{v1(SECRET)},{v1(OLD)}"  # what Stripe sends while both are active
    assert verify(
        "stripe_signature", body=BODY, headers={"Stripe-Signature": both}, secrets=[SECRET], now=NOW
    )
    assert verify(
        "stripe_signature", body=BODY, headers={"Stripe-Signature": both}, secrets=[OLD], now=NOW
    )


def test_old_secret_verifies_while_the_new_one_is_listed_first() -> None:
    result = verify(
        "stripe_signature",
        body=BODY,
        headers={"Stripe-Signature": header(OLD)},
        secrets=[SECRET, OLD],
        now=NOW,
    )
    assert result.secret_index == 1


def test_delivery_id_does_not_depend_on_header_text() -> None:
    both = f"t={NOW},{v1(SECRET)},{v1(OLD)}"
    ids = {
        verify(
            "stripe_signature",
            body=BODY,
            headers={"Stripe-Signature": value},
            secrets=[SECRET, OLD],
            now=NOW,
        ).delivery_id
        for value in (both, header(SECRET), header(OLD), f"t={NOW},v1={v1(SECRET)[3:].upper()}")
    }
    assert len(ids) == 1  # a replay cannot dodge detection by trimming or recasing the header
    other = verify(
        "stripe_signature",
        body=BODY,
        headers={"Stripe-Signature": header(SECRET, t=NOW + 1)},
        secrets=[SECRET],
        now=NOW,
    )
    assert other.delivery_id not in ids


@pytest.mark.parametrize("name", ["stripe-signature", "STRIPE-SIGNATURE", "sTrIpE-sIgNaTuRe"])
def test_header_names_are_case_insensitive(name: str) -> None:
    assert verify(
        "stripe_signature", body=BODY, headers={name: header(SECRET)}, secrets=[SECRET], now=NOW
    )


def test_no_error_leaks_the_secret_or_expected_signature() -> None:
    good = header(CANARY)
    cases: list[tuple[dict[str, str], bytes]] = [
        ({"Stripe-Signature": good}, BODY + b"x"),
        ({"Stripe-Signature": header(CANARY, t=NOW - 999)}, BODY),
        ({"Stripe-Signature": header("whsec_other")}, BODY),
        ({"Stripe-Signature": good.replace("v1=", "v0=")}, BODY),
        ({"Stripe-Signature": "t=1,v1=xyz"}, BODY),
        ({}, BODY),
    ]
    for headers, body in cases:
        with pytest.raises(WebhookError) as excinfo:
            verify("stripe_signature", body=body, headers=headers, secrets=[CANARY], now=NOW)
        assert_clean(excinfo.value, CANARY, f"{NOW}.".encode() + body)
        assert_clean(excinfo.value, CANARY, f"{NOW - 999}.".encode() + body)
