"""Manifests: every bundled one validates, every broken one is refused at the right place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker.errors import ConfigError, ManifestError
from broker.manifest import (
    BUNDLED_DIR,
    fill_template,
    load_catalog,
    load_manifest,
    manifest_paths,
    validate_manifest,
)

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.json"))
BUNDLED = manifest_paths(BUNDLED_DIR)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.parent.name)
def test_bundled_manifest_validates(path: Path) -> None:
    manifest = load_manifest(path)
    assert manifest.key == path.parent.name


def test_bundled_catalog_breadth() -> None:
    catalog = load_catalog([])
    modes = [m.auth_mode for m in catalog]
    assert len(catalog) >= 16
    assert modes.count("oauth") >= 10
    assert modes.count("api_key") >= 3


def test_stripe_is_the_guides_manifest() -> None:
    stripe = load_catalog([]).get("stripe")
    assert (stripe.key, stripe.kind, stripe.version) == ("stripe", "source", "0.2.0")
    assert stripe.permissions.http == ["https://api.stripe.com/*"]
    assert stripe.granted_secrets == {"api_key", "webhook_secret"}
    assert stripe.connection.test_connection is not None
    assert stripe.connection.test_connection.route == "/setup/test_connection"
    assert stripe.webhooks is not None and stripe.webhooks.auth == "stripe_signature"
    assert [(s.key, s.mode, s.schedule) for s in stripe.streams] == [
        ("events", "webhook", None),
        *[(k, "poll", "*/15 * * * *") for k in ("customers", "invoices", "payments", "payouts")],
    ]
    assert {(f.key, f.type) for f in stripe.fields} == {
        ("stripe_balance_transaction_id", "string"),
        ("stripe_tax_behavior", "select"),
        ("stripe_fee_amount", "currency"),
    }
    assert stripe.ui is not None
    (column,) = stripe.ui.line_columns
    assert (column.id, column.field, column.width, column.order) == (
        "stripe-tax-behavior",
        "stripe_tax_behavior",
        140,
        60,
    )
    assert stripe.auth_mode == "api_key"


def test_broken_corpus_is_broad() -> None:
    cases = [json.loads(p.read_text()) for p in BROKEN]
    assert len(cases) >= 20
    assert len({c["mistake"] for c in cases}) == len(cases)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_manifest_is_refused_at_its_place(path: Path) -> None:
    case = json.loads(path.read_text())
    with pytest.raises(ManifestError) as info:
        validate_manifest(case["manifest"])
    problems = info.value.problems
    assert any(
        p.path == case["expect_path"] and case["expect_message"] in p.message.lower()
        for p in problems
    ), f"{case['mistake']}: want {case['expect_path']} ~ {case['expect_message']!r}: {problems}"


def _shopify_like() -> dict[str, Any]:
    return {
        "key": "shop",
        "name": "Shop",
        "provider": "shop",
        "kind": "source",
        "version": "1.0.0",
        "connection": {
            "settingsSchema": {
                "type": "object",
                "required": ["shop"],
                "properties": {"shop": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"}},
            },
            "oauth": {
                "authorizationUrlTemplate": "https://<shop>.myshopify.com/admin/oauth/authorize",
                "tokenUrlTemplate": "https://<shop>.myshopify.com/admin/oauth/access_token",
                "client": {"credentialKey": "shop_app"},
            },
        },
    }


@pytest.mark.parametrize("shop", ["evil.com/x", "evil.com#", "a@evil.com", "", "x:443", "A B"])
def test_a_template_cannot_be_steered_to_another_host(shop: str) -> None:
    manifest = validate_manifest(_shopify_like())
    assert manifest.connection.oauth is not None
    template = manifest.connection.oauth.token_url_template
    with pytest.raises(ManifestError):
        fill_template(template, manifest, tenant_id="t1", settings={"shop": shop})


def test_template_filling() -> None:
    manifest = validate_manifest(_shopify_like())
    url = fill_template(
        "https://<shop>.myshopify.com/x?t=<tenant_id>&c=<connection_id>",
        manifest,
        tenant_id="t 1",
        connection_id="conn_1",
        settings={"shop": "acme-1"},
    )
    assert url == "https://acme-1.myshopify.com/x?t=t%201&c=conn_1"


@pytest.mark.parametrize("pattern", ["^.+$", "^[a-z.:/]+$", "(", None])
def test_a_loose_pattern_on_a_url_setting_is_refused(pattern: str | None) -> None:
    data = _shopify_like()
    prop = data["connection"]["settingsSchema"]["properties"]["shop"]
    if pattern is None:
        del prop["pattern"]
    else:
        prop["pattern"] = pattern
    with pytest.raises(ManifestError) as info:
        validate_manifest(data)
    assert any(
        p.path == "$.connection.settingsSchema.properties.shop.pattern" for p in info.value.problems
    ) or (pattern == "(" and "$.connection.settingsSchema" in str(info.value))


def test_reserved_oauth_parameters_cannot_be_overridden() -> None:
    data = _shopify_like()
    data["connection"]["oauth"]["authorizationParams"] = {
        "redirect_uri": "https://evil",
        "prompt": "consent",
    }
    data["connection"]["oauth"]["tokenParams"] = {"grant_type": "password"}
    with pytest.raises(ManifestError) as info:
        validate_manifest(data)
    paths = {p.path for p in info.value.problems}
    assert paths == {
        "$.connection.oauth.authorizationParams.redirect_uri",
        "$.connection.oauth.tokenParams.grant_type",
    }


def test_load_manifest_reports_file_problems(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    bad_json = tmp_path / "x" / "manifest.json"
    bad_json.write_text("{nope")
    with pytest.raises(ManifestError) as info:
        load_manifest(bad_json)
    assert str(bad_json) in str(info.value) and "not JSON" in str(info.value)
    bad_json.write_text(json.dumps(_shopify_like()))
    with pytest.raises(ManifestError, match="does not match its folder"):
        load_manifest(bad_json)


def test_catalog_refuses_duplicates_and_missing_dirs(tmp_path: Path) -> None:
    (tmp_path / "stripe").mkdir()
    (tmp_path / "stripe" / "manifest.json").write_text(
        (BUNDLED_DIR / "stripe" / "manifest.json").read_text()
    )
    with pytest.raises(ConfigError, match="already defined"):
        load_catalog([tmp_path])
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog([tmp_path / "missing"])
    extra = tmp_path / "extra"
    (extra / "shop").mkdir(parents=True)
    (extra / "shop" / "manifest.json").write_text(json.dumps(_shopify_like()))
    assert load_catalog([extra], bundled=False).get("shop").auth_mode == "oauth"


HTTP_AUTH = {
    # the providers' documented schemes (connectors/README.md)
    "stripe": {"type": "bearer", "secret": "api_key"},
    "sendgrid": {"type": "bearer", "secret": "api_key"},
    "resend": {"type": "bearer", "secret": "api_key"},
    "openai": {"type": "bearer", "secret": "api_key"},
    "clerk": {"type": "bearer", "secret": "secret_key"},
    "postmark": {"type": "header", "name": "X-Postmark-Server-Token", "secret": "server_token"},
    "brevo": {"type": "header", "name": "api-key", "secret": "api_key"},
    "twilio": {"type": "basic", "username": "account_sid", "password": "auth_token"},
    "mailchimp": {"type": "basic", "username": "data_center", "password": "api_key"},
}


def test_every_api_key_connector_says_where_its_credential_goes() -> None:
    catalog = load_catalog([])
    declared = {
        m.key: m.connection.http_auth.model_dump(exclude_none=True)
        for m in catalog
        if m.connection.http_auth is not None
    }
    assert declared == HTTP_AUTH
    assert {m.key for m in catalog if m.auth_mode == "api_key"} == set(HTTP_AUTH)


def test_rate_limits_are_read_in_the_manifests_units() -> None:
    catalog = load_catalog([])
    stripe, hubspot = catalog.get("stripe"), catalog.get("hubspot")
    assert stripe.connection.rate_limit is not None
    assert (stripe.connection.rate_limit.requests, stripe.connection.rate_limit.per_seconds) == (
        100,
        1,
    )
    assert hubspot.connection.rate_limit is not None
    assert hubspot.connection.rate_limit.model_dump(by_alias=True) == {
        "requests": 100,
        "perSeconds": 10,
    }
    assert catalog.get("twilio").connection.rate_limit is None  # none documented


def test_a_connector_may_call_through_the_proxy_without_granting_its_key() -> None:
    # the proxy injects the key; the runtime, not granted it, can never read it
    postmark = json.loads((BUNDLED_DIR / "postmark" / "manifest.json").read_text())
    postmark["permissions"]["secrets"] = {}
    manifest = validate_manifest(postmark)
    assert manifest.connection.http_auth is not None
    assert manifest.granted_secrets == frozenset()
