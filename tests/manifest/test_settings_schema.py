"""settingsSchema: schema checks, settings validation without echoing values, the secret split."""

from __future__ import annotations

from typing import Any

import pytest

from broker.errors import InvalidSettings
from broker.manifest import settings_schema as ss

CANARY = "sk_live_CANARY_7f3a9c"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["api_key", "region"],
    "properties": {
        "api_key": {
            "type": "string",
            "minLength": 12,
            "pattern": "^sk_test_",
            "x-secret": True,
            "x-placeholder": "sk_test_...",
        },
        "region": {"type": "string", "enum": ["us", "eu"]},
        "webhook_secret": {"type": "string", "x-secret": True},
        "limit": {"type": "integer", "minimum": 1},
    },
}


def problems(settings: Any, **kw: Any) -> list[str]:
    with pytest.raises(InvalidSettings) as info:
        ss.validate_settings(SCHEMA, settings, **kw)
    assert info.value.status == 400
    return [str(p) for p in info.value.problems]


def test_valid_settings_pass() -> None:
    ss.validate_settings(SCHEMA, {"api_key": "sk_test_1234567890", "region": "eu"})


def test_every_problem_is_reported_with_its_path() -> None:
    found = problems({"api_key": CANARY, "limit": 0, "bogus": 1})
    joined = "\n".join(found)
    assert "$.settings: missing required setting 'region'" in joined
    assert "$.settings.api_key: does not match the pattern ^sk_test_" in joined
    assert "$.settings.limit: must be >= 1" in joined
    assert "$.settings: unknown setting 'bogus'" in joined


@pytest.mark.parametrize(
    ("rule", "value", "message"),
    [
        ({"minLength": 1}, "", "must be at least 1 character long"),
        ({"minLength": 2}, "x", "must be at least 2 characters long"),
        ({"maxLength": 1}, "xy", "must be at most 1 character long"),
        ({"maxLength": 3}, "wxyz", "must be at most 3 characters long"),
        ({"type": "array", "minItems": 1}, [], "must have at least 1 item"),
        ({"type": "array", "maxItems": 2}, [1, 2, 3], "must have at most 2 items"),
        ({"type": "object", "minProperties": 1}, {}, "must have at least 1 property"),
        (
            {"type": "object", "maxProperties": 2},
            dict.fromkeys("abc", 1),
            "must have at most 2 properties",
        ),
    ],
)
def test_counts_in_messages_agree_with_their_noun(
    rule: dict[str, Any], value: Any, message: str
) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", **rule}}}
    with pytest.raises(InvalidSettings) as info:
        ss.validate_settings(schema, {"s": value})
    assert [str(p) for p in info.value.problems] == [f"$.settings.s: {message}"]


def test_several_missing_or_unknown_settings_are_named_in_the_plural() -> None:
    assert problems({"region": "eu", "x": 1, "y": 2}) == [
        "$.settings: missing required setting 'api_key'",
        "$.settings: unknown settings 'x', 'y'",
    ]
    assert problems({}) == ["$.settings: missing required settings 'api_key', 'region'"]


@pytest.mark.parametrize(
    ("value", "canary"),
    [
        (CANARY, CANARY),
        (987654321, "987654321"),
        ([CANARY], CANARY),
        ({"n": CANARY}, CANARY),
        ("Zq9", "Zq9"),
    ],
)
def test_a_secret_value_is_never_echoed(value: Any, canary: str) -> None:
    with pytest.raises(InvalidSettings) as info:
        ss.validate_settings(SCHEMA, {"api_key": value, "region": "us", "limit": value})
    assert canary not in str(info.value)


def test_non_object_settings() -> None:
    assert problems([1, 2]) == ["$.settings: settings must be a JSON object"]


def test_partial_skips_required() -> None:
    ss.validate_settings(SCHEMA, {"region": "us"}, partial=True)
    assert problems({"region": "mars"}, partial=True) == [
        "$.settings.region: must be one of 'us', 'eu'"
    ]


def test_split_and_redact() -> None:
    settings = {"api_key": CANARY, "region": "eu", "webhook_secret": "whsec_x"}
    public, secret = ss.split(SCHEMA, settings)
    assert public == {"region": "eu"}
    assert secret == {"api_key": CANARY, "webhook_secret": "whsec_x"}
    assert ss.redact(SCHEMA, settings) == {
        "api_key": ss.REDACTED,
        "region": "eu",
        "webhook_secret": ss.REDACTED,
    }
    assert ss.secret_names(SCHEMA) == {"api_key", "webhook_secret"}


@pytest.mark.parametrize(
    ("schema", "path", "fragment"),
    [
        ([], "$", "JSON object"),
        ({"type": "strin"}, "$.type", "not valid JSON Schema"),
        ({"type": "array"}, "$.type", "must describe an object"),
        (
            {"properties": {"k": {"type": "string", "x-secret": "yes"}}},
            "$.properties.k.x-secret",
            "true or false",
        ),
        (
            {"properties": {"k": {"type": "integer", "x-secret": True}}},
            "$.properties.k.type",
            "must be a string",
        ),
        (
            {"properties": {"k": {"x-placeholder": 3}}},
            "$.properties.k.x-placeholder",
            "must be a string",
        ),
        ({"required": ["k"], "properties": {}}, "$.required[0]", "not declared"),
        (
            {"properties": {"o": {"type": "object", "properties": {"s": {"x-secret": True}}}}},
            "$.properties.o.properties.s",
            "top-level",
        ),
    ],
)
def test_check_schema_names_the_place(schema: Any, path: str, fragment: str) -> None:
    found = ss.check_schema(schema)
    assert any(p.path == path and fragment in p.message for p in found), found


def test_json_path() -> None:
    assert ss.json_path(["streams", 1, "schedule"]) == "$.streams[1].schedule"
