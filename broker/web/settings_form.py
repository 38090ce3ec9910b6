"""The API-key connector's settings form, drawn from its settingsSchema.

`title` is the label, `description` the help text, `x-placeholder` the placeholder; `enum`
is a select; `required`, `minLength`, `maxLength` and `pattern` become the attributes the
browser checks (the server checks the same schema again). `x-secret` settings are password
inputs that are never filled in, with a show/hide button the script reveals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from typing import Any

from aiohttp import web

from broker.errors import ConnectionTestFailed, InvalidRequest, InvalidSettings
from broker.manifest import Manifest, settings_schema
from broker.manifest.settings_schema import PLACEHOLDER, SECRET
from broker.web.assets import Assets
from broker.web.pages import attr, render

_SIMPLE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
# characters a character class must escape under the `v` flag, which browsers now compile
# `pattern` attributes with (`[a-z0-9-]`, valid JSON Schema, is a syntax error there)
_CLASS_SYNTAX = frozenset("()[]{}/-|")
_DOUBLE_PUNCTUATORS = frozenset("&!#$%*+,.:;<=>?@^`~")
_CLASS_ESCAPES = frozenset("dDwWsSpP")


@dataclass
class FormState:
    """What one rendering of the form shows besides the schema."""

    values: dict[str, Any] = field(default_factory=dict)
    """Current and entered values; secrets among them are never shown."""
    field_errors: dict[str, list[str]] = field(default_factory=dict)
    form_errors: list[str] = field(default_factory=list)
    updating: str | None = None
    """The id of the connection the form changes (a reconnect session)."""


def settings_form(
    assets: Assets,
    manifest: Manifest,
    state: FormState,
    *,
    action: str,
    cancel_url: str,
    return_origin: str,
    setup: str,
) -> web.Response:
    schema = manifest.settings_schema
    required = set(schema.get("required", []))
    fields = "".join(
        _field(index, name, prop, name in required, state)
        for index, (name, prop) in enumerate(schema.get("properties", {}).items())
        if isinstance(prop, dict)
    )
    alert = ""
    if state.form_errors or state.field_errors:
        lines = "".join(f"<p>{escape(e)}</p>" for e in state.form_errors)
        if state.field_errors:
            lines += "<p>Check the fields marked below.</p>"
        alert = f'<div class="alert" role="alert" id="problems">{lines}</div>'
    notice = ""
    if state.updating is not None:
        notice = (
            f'<p class="notice" id="reconnect">This changes the existing connection '
            f"<code>{escape(state.updating)}</code>. Fields left empty keep their current "
            "values; secrets are never shown.</p>"
        )
    verb = "Save changes" if state.updating else "Connect"
    body = (
        f"<h1>Connect {escape(manifest.name)}</h1>{notice}{alert}{setup}"
        f'<form method="post" action="{attr(action)}">{fields}'
        f'<div class="actions"><button type="submit" class="primary">{verb}</button>'
        f'<a href="{attr(cancel_url)}" id="cancel">Cancel</a></div></form>'
    )
    status = 400 if alert else 200
    return render(
        f"Connect {manifest.name}", body, status, assets=assets, form_targets=[return_origin]
    )


def failed_form(
    manifest: Manifest,
    values: dict[str, Any],
    exc: InvalidRequest,
    *,
    kept: dict[str, Any],
    updating: bool,
) -> FormState:
    """The form again after a refusal: each problem beside its field where it has one (the
    same schema checked again), the rest (the runtime's message) above the form. `kept`: the
    values the form started with (a reconnect's current settings)."""
    by_name: dict[str, list[str]] = {}
    general = [str(exc)]
    if isinstance(exc, ConnectionTestFailed):
        general = [f"{manifest.name} did not accept these settings: {exc.runtime_message}"]
    elif isinstance(exc, InvalidSettings):
        # a reconnect checks only what was entered: what is left empty keeps its value
        by_name, general = settings_schema.problems_by_setting(
            manifest.settings_schema, values, partial=updating
        )
        if not by_name and not general:
            general = [str(p) for p in exc.problems]
    return FormState(values={**kept, **values}, field_errors=by_name, form_errors=general)


def typed_values(schema: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """Form fields are strings; give numbers and booleans their schema type, drop empties."""
    out: dict[str, Any] = {}
    properties = schema.get("properties", {})
    for name, raw in form.items():
        if raw == "":
            continue
        kind = properties.get(name, {}).get("type")
        try:
            if kind == "integer":
                out[name] = int(raw)
            elif kind == "number":
                out[name] = float(raw)
            elif kind == "boolean":
                out[name] = raw.lower() in ("1", "true", "on", "yes")
            else:
                out[name] = raw
        except ValueError:
            out[name] = raw  # let schema validation report the type
    return out


def _field(index: int, name: str, prop: dict[str, Any], required: bool, state: FormState) -> str:
    ident = name if _SIMPLE_ID.fullmatch(name) else f"setting-{index}"
    secret = prop.get(SECRET) is True
    errors = state.field_errors.get(name, [])
    help_text = str(prop.get("description", ""))
    if secret and state.updating:
        help_text = " ".join(filter(None, [help_text, "Leave empty to keep the current value."]))
    # a reconnect keeps what is left empty, so nothing is required there
    must = required and state.updating is None
    described = [f"{ident}-help"] if help_text else []
    described += [f"{ident}-error"] if errors else []
    common = f'id="{attr(ident)}" name="{attr(name)}"'
    if must:
        common += " required"
    if described:
        common += f' aria-describedby="{attr(" ".join(described))}"'
    if errors:
        common += ' aria-invalid="true"'
    value = None if secret else state.values.get(name)
    if isinstance(prop.get("enum"), list):
        control = _select(common, prop["enum"], value, must)
    else:
        control = _input(common, prop, value, secret, ident, str(prop.get("title", name)))
    label = escape(str(prop.get("title", name)))
    if not must:
        label += ' <span class="optional">(optional)</span>'
    out = f'<div class="field"><label for="{attr(ident)}">{label}</label>{control}'
    if help_text:
        out += f'<p class="help" id="{attr(ident)}-help">{escape(help_text)}</p>'
    if errors:
        out += f'<p class="field-error" id="{attr(ident)}-error">{escape("; ".join(errors))}</p>'
    return out + "</div>"


def _select(common: str, options: list[Any], value: Any, must: bool) -> str:
    shown = [] if must and value is not None else ['<option value="">Choose one</option>']
    for option in options:
        text = _form_text(option)
        chosen = " selected" if value is not None and _form_text(value) == text else ""
        shown.append(f'<option value="{attr(text)}"{chosen}>{escape(text)}</option>')
    return f"<select {common}>{''.join(shown)}</select>"


def _input(
    common: str, prop: dict[str, Any], value: Any, secret: bool, ident: str, title: str
) -> str:
    kind = prop.get("type", "string")
    attrs = common
    if kind in ("integer", "number"):
        attrs += ' type="number"' + (' step="1"' if kind == "integer" else ' step="any"')
        for keyword, html_name in (("minimum", "min"), ("maximum", "max")):
            if isinstance(prop.get(keyword), int | float):
                attrs += f' {html_name}="{prop[keyword]}"'
    else:
        attrs += ' type="password"' if secret else ' type="text"'
        for keyword, html_name in (("minLength", "minlength"), ("maxLength", "maxlength")):
            if isinstance(prop.get(keyword), int):
                attrs += f' {html_name}="{prop[keyword]}"'
        if isinstance(prop.get("pattern"), str):
            attrs += f' pattern="{attr(html_pattern(prop["pattern"]))}"'
    if isinstance(prop.get(PLACEHOLDER), str):
        attrs += f' placeholder="{attr(prop[PLACEHOLDER])}"'
    if value is not None:
        attrs += f' value="{attr(_form_text(value))}"'
    attrs += ' autocomplete="off" spellcheck="false" autocapitalize="off"'
    if not secret:
        return f"<input {attrs}>"
    toggle = (
        f'<button type="button" data-reveal aria-controls="{attr(ident)}" aria-pressed="false"'
        f' hidden>Show<span class="visually-hidden"> {escape(title)}</span></button>'
    )
    return f'<div class="control"><input {attrs}>{toggle}</div>'


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def html_pattern(pattern: str) -> str:
    """A JSON Schema `pattern` as an HTML `pattern` attribute with the same meaning: JSON
    Schema searches (unanchored), HTML matches the whole value, so the pattern is wrapped;
    and characters that the `v` flag reserves inside a character class are escaped."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif char == "[":
            i = _char_class(pattern, i, out)
        else:
            out.append(char)
            i += 1
    return "[\\s\\S]*(?:" + "".join(out) + ")[\\s\\S]*"


def _char_class(pattern: str, start: int, out: list[str]) -> int:
    """Copy the class opening at `start` into `out`, escaped for the `v` flag; the index
    after it."""
    i, n = start + 1, len(pattern)
    out.append("[")
    if i < n and pattern[i] == "^":
        out.append("^")
        i += 1
    can_range = False  # the last item was a single character a `-` may extend
    while i < n and pattern[i] != "]":
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            can_range = pattern[i + 1 : i + 2] not in _CLASS_ESCAPES  # `\d-z` is no range
            i += 2
        elif char == "-" and can_range and i + 1 < n and pattern[i + 1] != "]":
            end = pattern[i + 1 : i + 3] if pattern[i + 1] == "\\" else pattern[i + 1]
            out.append("-" + (end if end.startswith("\\") else _class_char(end, "")))
            i += 1 + len(end)
            can_range = False
        else:
            following = pattern[i + 1] if i + 1 < n else ""
            out.append(_class_char(char, following))
            i += 1
            can_range = True
    out.append("]")
    return i + 1


def _class_char(char: str, following: str) -> str:
    if char in _CLASS_SYNTAX or (char in _DOUBLE_PUNCTUATORS and following == char):
        return "\\" + char
    return char
