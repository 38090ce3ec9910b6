"""A connector's `settingsSchema`: JSON Schema 2020-12 plus two annotations of ours.

`x-secret: true` on a top-level property makes it a secret: sealed at rest, redacted on reads.
`x-placeholder` is a UI hint. Settings are validated against the schema with unknown property
names refused unless the schema says otherwise (a typo must not silently drop a setting).

Error messages are built here from the failing keyword, never from jsonschema's own text,
because that text quotes the offending value and the value may be a secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from broker.errors import InvalidSettings, Problem

SECRET = "x-secret"
PLACEHOLDER = "x-placeholder"
REDACTED = "********"

Settings = dict[str, Any]


def json_path(parts: Iterable[str | int], root: str = "$") -> str:
    """`["connection", "oauth", "scopes", 0]` -> `$.connection.oauth.scopes[0]`."""
    out = root
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_schema(schema: Any, root: str = "$") -> list[Problem]:
    """Problems with a settingsSchema itself (not with settings)."""
    if not isinstance(schema, dict):
        return [Problem(root, "settingsSchema must be a JSON object")]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [
            Problem(json_path(exc.absolute_path, root), f"not valid JSON Schema: {exc.message}")
        ]
    problems: list[Problem] = []
    if schema.get("type", "object") != "object":
        problems.append(Problem(f"{root}.type", "settingsSchema must describe an object"))
    properties = schema.get("properties", {})
    for name, prop in properties.items():
        where = f"{root}.properties.{name}"
        if not isinstance(prop, dict):
            continue
        if SECRET in prop and not isinstance(prop[SECRET], bool):
            problems.append(Problem(f"{where}.{SECRET}", "x-secret must be true or false"))
        if prop.get(SECRET) is True and prop.get("type", "string") != "string":
            problems.append(Problem(f"{where}.type", "a secret setting must be a string"))
        if PLACEHOLDER in prop and not isinstance(prop[PLACEHOLDER], str):
            problems.append(Problem(f"{where}.{PLACEHOLDER}", "x-placeholder must be a string"))
        problems.extend(_nested_secrets(prop, where))
    for i, name in enumerate(schema.get("required", [])):
        if name not in properties:
            problems.append(
                Problem(f"{root}.required[{i}]", f"{name!r} is required but not declared")
            )
    return problems


def _nested_secrets(node: Any, where: str) -> list[Problem]:
    # Only top-level properties can be sealed separately; a nested x-secret would be stored
    # in the clear, so it is refused rather than ignored.
    found: list[Problem] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict) and SECRET in value:
                found.append(
                    Problem(f"{where}.{key}", "x-secret is only allowed on top-level properties")
                )
            found.extend(_nested_secrets(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_nested_secrets(value, f"{where}[{i}]"))
    return found


def declared(schema: Mapping[str, Any]) -> set[str]:
    return set(schema.get("properties", {}))


def secret_names(schema: Mapping[str, Any]) -> set[str]:
    return {
        name
        for name, prop in schema.get("properties", {}).items()
        if isinstance(prop, dict) and prop.get(SECRET) is True
    }


def validate_settings(schema: Mapping[str, Any], settings: Any, *, partial: bool = False) -> None:
    """Raise `InvalidSettings` listing every problem; messages never quote a value.

    `partial=True` checks a subset (a PATCH): `required` is not enforced.
    """
    if not isinstance(settings, dict):
        raise InvalidSettings([Problem("$.settings", "settings must be a JSON object")])
    # dict.fromkeys: jsonschema reports each missing name as its own error, and each is
    # described with all of them
    problems = list(
        dict.fromkeys(
            Problem(json_path(err.absolute_path, "$.settings"), _describe(err))
            for err in _errors(schema, settings, partial)
        )
    )
    if problems:
        raise InvalidSettings(problems)


def problems_by_setting(
    schema: Mapping[str, Any], settings: Mapping[str, Any], *, partial: bool = False
) -> tuple[dict[str, list[str]], list[str]]:
    """The same checks as `validate_settings`, told per setting for a form that shows each
    message beside its field: (messages by setting name, messages of no one setting)."""
    by_name: dict[str, list[str]] = {}
    general: list[str] = []
    for err in _errors(schema, settings, partial):
        if err.validator == "required":
            instance = err.instance if isinstance(err.instance, dict) else {}
            for name in cast(list[str], err.validator_value):
                if name not in instance and "is required" not in by_name.get(name, []):
                    by_name.setdefault(name, []).append("is required")
        elif err.absolute_path:
            by_name.setdefault(str(err.absolute_path[0]), []).append(_describe(err))
        elif (message := _describe(err)) not in general:
            general.append(message)
    return by_name, general


def _errors(schema: Mapping[str, Any], settings: Any, partial: bool) -> list[ValidationError]:
    effective = dict(schema)
    effective.setdefault("additionalProperties", False)
    if partial:
        effective.pop("required", None)
    validator = Draft202012Validator(effective)
    return sorted(validator.iter_errors(settings), key=lambda e: list(e.absolute_path))


def _describe(err: ValidationError) -> str:
    keyword, expected = str(err.validator), cast(Any, err.validator_value)
    instance = err.instance if isinstance(err.instance, dict) else {}
    if keyword == "required":
        missing = [n for n in expected if n not in instance]
        return f"missing required {_noun(len(missing), 'setting')} " + _names(missing)
    if keyword == "additionalProperties":
        schema = err.schema if isinstance(err.schema, dict) else {}
        extra = sorted(set(instance) - set(schema.get("properties", {})))
        return f"unknown {_noun(len(extra), 'setting')} " + _names(extra)
    if keyword == "enum":
        return "must be one of " + ", ".join(repr(v) for v in expected)
    if keyword in _COUNTED and isinstance(expected, int):
        template, noun = _COUNTED[keyword]
        return template.format(f"{expected} {_noun(expected, noun)}")
    templates = {
        "type": "must be of type {}",
        "pattern": "does not match the pattern {}",
        "format": "is not a valid {}",
        "minimum": "must be >= {}",
        "maximum": "must be <= {}",
    }
    return templates.get(keyword, f"fails the {keyword!r} rule").format(expected)


# keyword -> (message, what is counted)
_COUNTED = {
    "minLength": ("must be at least {} long", "character"),
    "maxLength": ("must be at most {} long", "character"),
    "minItems": ("must have at least {}", "item"),
    "maxItems": ("must have at most {}", "item"),
    "minProperties": ("must have at least {}", "property"),
    "maxProperties": ("must have at most {}", "property"),
}


def _noun(count: int, singular: str) -> str:
    if count == 1:
        return singular
    return singular[:-1] + "ies" if singular.endswith("y") else singular + "s"


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


def split(schema: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[Settings, Settings]:
    """(non-secret settings, secret settings)."""
    secrets = secret_names(schema)
    public = {k: v for k, v in settings.items() if k not in secrets}
    secret = {k: v for k, v in settings.items() if k in secrets}
    return public, secret


def redact(schema: Mapping[str, Any], settings: Mapping[str, Any]) -> Settings:
    secrets = secret_names(schema)
    return {k: (REDACTED if k in secrets else v) for k, v in settings.items()}
