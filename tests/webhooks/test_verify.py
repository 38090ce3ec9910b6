"""The entry point and what every scheme shares: registry, argument guards, header rules,
the error tree, and the package staying pure."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from broker.errors import BrokerError, ConfigError, InvalidRequest, Unauthorized
from broker.webhooks import (
    SCHEMES,
    InvalidSignature,
    MalformedHeader,
    MissingHeader,
    TimestampOutOfTolerance,
    UnknownScheme,
    UnusableSecret,
    WebhookError,
    verify,
)
from tests.test_import_rule import imports_of
from tests.webhooks.support import BODY, CANARY, NOW, hmac_sha256, refused

GITHUB_SIG = "sha256=" + hmac_sha256("s3cret", BODY).hex()
PACKAGE = Path(__file__).resolve().parents[2] / "broker" / "webhooks"


def test_the_registry_names_every_scheme_a_manifest_may_use() -> None:
    assert set(SCHEMES) == {
        "stripe_signature",
        "github_hmac_sha256",
        "shopify_hmac_sha256",
        "slack_v0",
        "standard_webhooks",
    }


@pytest.mark.parametrize("scheme", ["", "hmac", "Stripe_Signature", "x" * 500])
def test_unknown_scheme_is_400(scheme: str) -> None:
    with pytest.raises(UnknownScheme) as excinfo:
        verify(scheme, body=BODY, headers={}, secrets=["s"], now=NOW)
    refused(excinfo, "unknown_scheme", 400)
    assert len(str(excinfo.value)) < 120


def test_the_error_tree_maps_to_http() -> None:
    cases: list[tuple[WebhookError, type[BrokerError], str, int]] = [
        (InvalidSignature("x"), Unauthorized, "invalid_signature", 401),
        (TimestampOutOfTolerance(300), Unauthorized, "timestamp_out_of_tolerance", 401),
        (MissingHeader("H"), InvalidRequest, "missing_header", 400),
        (MalformedHeader("H", "bad"), InvalidRequest, "malformed_header", 400),
        (UnknownScheme("x"), InvalidRequest, "unknown_scheme", 400),
        (UnusableSecret("x"), ConfigError, "unusable_webhook_secret", 500),
    ]
    for exc, parent, code, status in cases:
        assert isinstance(exc, WebhookError) and isinstance(exc, parent)
        assert (exc.code, exc.status) == (code, status)


def test_secrets_must_be_a_sequence_not_one_string() -> None:
    with pytest.raises(TypeError):
        verify(
            "github_hmac_sha256",
            body=BODY,
            headers={"X-Hub-Signature-256": GITHUB_SIG},
            secrets="s3cret",
            now=NOW,
        )


@pytest.mark.parametrize("secrets", [[], [""], ["s3cret", ""]])
def test_no_secret_or_an_empty_one_is_unusable(secrets: list[str]) -> None:
    with pytest.raises(UnusableSecret) as excinfo:
        verify(
            "github_hmac_sha256",
            body=BODY,
            headers={"X-Hub-Signature-256": GITHUB_SIG},
            secrets=secrets,
            now=NOW,
        )
    refused(excinfo, "unusable_webhook_secret", 500)


def test_body_must_be_raw_bytes() -> None:
    with pytest.raises(TypeError):
        verify(
            "github_hmac_sha256",
            body=BODY.decode(),  # type: ignore[arg-type]
            headers={"X-Hub-Signature-256": GITHUB_SIG},
            secrets=["s3cret"],
            now=NOW,
        )


def test_negative_tolerance_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        verify("slack_v0", body=BODY, headers={}, secrets=["s"], now=NOW, tolerance=-1)


def test_aiohttp_style_multidict_headers_work() -> None:
    headers = CIMultiDictProxy(CIMultiDict({"x-hub-signature-256": GITHUB_SIG}))
    assert verify("github_hmac_sha256", body=BODY, headers=headers, secrets=["s3cret"], now=NOW)


def test_a_header_sent_twice_with_different_values_is_malformed() -> None:
    bogus = "sha256=" + "0" * 64
    for headers in (
        {"X-Hub-Signature-256": GITHUB_SIG, "x-hub-signature-256": bogus},
        CIMultiDictProxy(
            CIMultiDict([("X-Hub-Signature-256", bogus), ("X-Hub-Signature-256", GITHUB_SIG)])
        ),
    ):
        with pytest.raises(MalformedHeader):
            verify("github_hmac_sha256", body=BODY, headers=headers, secrets=["s3cret"], now=NOW)
    same = {"X-Hub-Signature-256": GITHUB_SIG, "x-hub-signature-256": f" {GITHUB_SIG} "}
    assert verify("github_hmac_sha256", body=BODY, headers=same, secrets=["s3cret"], now=NOW)


def test_an_unknown_scheme_message_never_carries_a_secret() -> None:
    with pytest.raises(UnknownScheme) as excinfo:
        verify("nope", body=BODY, headers={}, secrets=[CANARY], now=NOW)
    assert CANARY not in str(excinfo.value)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_the_package_imports_only_errors_and_the_standard_library(path: Path) -> None:
    module = "broker.webhooks" + ("" if path.stem == "__init__" else f".{path.stem}")
    for imported in imports_of(path, module):
        top = imported.split(".")[0]
        if top == "broker":
            assert imported.startswith(("broker.errors", "broker.webhooks")), imported
        else:
            assert top in {
                "__future__",
                "base64",
                "binascii",
                "collections",
                "dataclasses",
                "hashlib",
                "hmac",
                "re",
                "types",
                "typing",
            }, imported
