"""github_hmac_sha256, against the test vector GitHub publishes in "Validating webhook
deliveries" (secret "It's a Secret to Everybody", payload "Hello, World!")."""

from __future__ import annotations

import pytest

from broker.webhooks import (
    InvalidSignature,
    MalformedHeader,
    MissingHeader,
    Verified,
    WebhookError,
    verify,
)
from tests.webhooks.support import BODY, CANARY, NOW, assert_clean, hmac_sha256, refused

VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
SECRET = "gh-new-secret"
OLD = "gh-old-secret"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def sign(secret: str, body: bytes = BODY) -> str:
    return "sha256=" + hmac_sha256(secret, body).hex()


def check(
    headers: dict[str, str], secrets: list[str] | None = None, body: bytes = BODY
) -> Verified:
    return verify(
        "github_hmac_sha256", body=body, headers=headers, secrets=secrets or [SECRET], now=NOW
    )


def test_githubs_published_vector_verifies() -> None:
    result = verify(
        "github_hmac_sha256",
        body=VECTOR_BODY,
        headers={"X-Hub-Signature-256": VECTOR_SIGNATURE, "X-GitHub-Delivery": DELIVERY},
        secrets=[VECTOR_SECRET],
        now=NOW,
    )
    assert result.delivery_id == DELIVERY
    assert result.timestamp is None  # GitHub signs no timestamp
    assert result.secret_index == 0
    assert sign(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIGNATURE  # the helper below is right too


def test_without_a_delivery_header_the_signed_body_identifies_it() -> None:
    first = verify(
        "github_hmac_sha256",
        body=VECTOR_BODY,
        headers={"X-Hub-Signature-256": VECTOR_SIGNATURE},
        secrets=[VECTOR_SECRET],
        now=NOW,
    )
    assert first.delivery_id.startswith("sha256:")


def test_tampered_body_is_refused() -> None:
    with pytest.raises(InvalidSignature) as excinfo:
        check({"X-Hub-Signature-256": VECTOR_SIGNATURE}, [VECTOR_SECRET], b"Hello, World?")
    refused(excinfo, "invalid_signature", 401)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        check(
            {"X-Hub-Signature-256": VECTOR_SIGNATURE}, ["It's a secret to everybody"], VECTOR_BODY
        )


def test_the_legacy_sha1_header_alone_is_missing_not_a_pass() -> None:
    with pytest.raises(MissingHeader) as excinfo:
        check({"X-Hub-Signature": "sha1=" + "0" * 40})
    refused(excinfo, "missing_header", 400)
    assert excinfo.value.header == "X-Hub-Signature-256"


@pytest.mark.parametrize(
    "value",
    [
        VECTOR_SIGNATURE.removeprefix("sha256="),
        VECTOR_SIGNATURE.replace("sha256=", "sha1="),
        VECTOR_SIGNATURE.replace("sha256=", "SHA256="),
        "sha256=xyz",
        VECTOR_SIGNATURE + "00",
        "sha256=",
    ],
)
def test_malformed_header_is_400(value: str) -> None:
    with pytest.raises(MalformedHeader) as excinfo:
        check({"X-Hub-Signature-256": value}, [VECTOR_SECRET], VECTOR_BODY)
    refused(excinfo, "malformed_header", 400)


def test_uppercase_hex_is_the_same_digest() -> None:
    value = "sha256=" + VECTOR_SIGNATURE.removeprefix("sha256=").upper()
    assert check({"X-Hub-Signature-256": value}, [VECTOR_SECRET], VECTOR_BODY)


def test_both_secrets_verify_during_a_roll() -> None:
    for signer in (SECRET, OLD):
        assert check({"X-Hub-Signature-256": sign(signer)}, [OLD, SECRET])


def test_old_secret_verifies_while_the_new_one_is_listed_first() -> None:
    result = verify(
        "github_hmac_sha256",
        body=BODY,
        headers={"X-Hub-Signature-256": sign(OLD)},
        secrets=[SECRET, OLD],
        now=NOW,
    )
    assert result.secret_index == 1


@pytest.mark.parametrize(
    ("sig_name", "id_name"),
    [("x-hub-signature-256", "x-github-delivery"), ("X-HUB-SIGNATURE-256", "X-GITHUB-DELIVERY")],
)
def test_header_names_are_case_insensitive(sig_name: str, id_name: str) -> None:
    result = verify(
        "github_hmac_sha256",
        body=BODY,
        headers={sig_name: sign(SECRET), id_name: DELIVERY},
        secrets=[SECRET],
        now=NOW,
    )
    assert result.delivery_id == DELIVERY


def test_the_fingerprint_is_the_signed_body_whatever_the_unsigned_headers_say() -> None:
    first = check({"X-Hub-Signature-256": sign(SECRET), "X-GitHub-Delivery": "d-1"})
    renamed = check({"X-Hub-Signature-256": sign(SECRET).upper().replace("SHA256=", "sha256=")})
    assert renamed.fingerprint == first.fingerprint
    assert check(
        {"X-Hub-Signature-256": sign(SECRET, BODY + b" ")}, body=BODY + b" "
    ).fingerprint != (first.fingerprint)


def test_no_error_leaks_the_secret_or_expected_signature() -> None:
    cases: list[tuple[dict[str, str], bytes]] = [
        ({"X-Hub-Signature-256": sign(CANARY)}, BODY + b"x"),
        ({"X-Hub-Signature-256": sign("other")}, BODY),
        ({"X-Hub-Signature-256": "sha256=nothex"}, BODY),
        ({}, BODY),
    ]
    for headers, body in cases:
        with pytest.raises(WebhookError) as excinfo:
            verify("github_hmac_sha256", body=body, headers=headers, secrets=[CANARY], now=NOW)
        assert_clean(excinfo.value, CANARY, body)
