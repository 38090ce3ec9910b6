"""URL templates: `<name>` placeholders filled from `tenant_id`, `connection_id` and
non-secret settings, and the checks that keep a filled template on the host it names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from broker.errors import ManifestError, Problem
from broker.manifest import settings_schema
from broker.manifest.models import Manifest

PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
BUILTIN_PLACEHOLDERS = frozenset({"tenant_id", "connection_id"})
# A value filled into a URL must not be able to end the host or path segment it sits in.
_URL_BREAKERS = ("a/b", "a?b", "a#b", "a@b", "a:b", "a\\b", "a%2Fb", "a b", "a\nb", "..")


def fill_template(
    template: str,
    manifest: Manifest,
    *,
    tenant_id: str,
    connection_id: str = "",
    settings: Mapping[str, Any],
) -> str:
    """Fill `<name>` placeholders. A setting's value must fully match its schema `pattern`
    (checked again here, not only at validation time) and is percent-encoded."""
    properties = manifest.settings_schema.get("properties", {})

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "tenant_id":
            return quote(tenant_id, safe="")
        if name == "connection_id":
            return quote(connection_id, safe="")
        raw = settings.get(name)
        pattern = properties.get(name, {}).get("pattern")
        if not isinstance(raw, str) or not pattern or not re.fullmatch(pattern, raw):
            raise ManifestError(
                [Problem(f"$.settings.{name}", "missing or does not match its pattern")]
            )
        return quote(raw, safe="")

    return PLACEHOLDER.sub(value, template)


def check_template(
    m: Manifest, where: str, template: str, *, relative_ok: bool = False
) -> list[Problem]:
    problems: list[Problem] = []
    properties = m.settings_schema.get("properties", {})
    secrets = settings_schema.secret_names(m.settings_schema)
    for name in PLACEHOLDER.findall(template):
        if name in BUILTIN_PLACEHOLDERS:
            continue
        if name not in properties:
            problems.append(
                Problem(
                    where,
                    f"placeholder <{name}> is not tenant_id, connection_id or a declared setting",
                )
            )
        elif name in secrets:
            problems.append(
                Problem(
                    where,
                    f"placeholder <{name}> names a secret setting; secrets never go into URLs",
                )
            )
        elif not safe_pattern(properties[name].get("pattern")):
            problems.append(
                Problem(
                    f"$.connection.settingsSchema.properties.{name}.pattern",
                    f"<{name}> fills a URL, so its pattern must reject / ? # @ : and spaces",
                )
            )
    probe = PLACEHOLDER.sub("x", template)
    if not (allowed_url(probe) or (relative_ok and probe.startswith("/"))):
        problems.append(
            Problem(
                where,
                "must be an https:// URL" + (" or a path starting with /" if relative_ok else ""),
            )
        )
    elif "://" in template and "<" in template.split("://", 1)[0]:
        problems.append(Problem(where, "the scheme cannot be a placeholder"))
    return problems


def safe_pattern(pattern: Any) -> bool:
    if not isinstance(pattern, str):
        return False
    try:
        compiled = re.compile(pattern)
    except re.error:
        return False
    return not any(compiled.fullmatch(probe) for probe in _URL_BREAKERS)


def allowed_url(url: str) -> bool:
    """https with a host; plain http only to loopback (local test peers)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}
