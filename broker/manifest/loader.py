"""Loading a manifest: the two validation passes, every problem with its JSON path.

First the structure (pydantic, `broker.manifest.models`, with the settingsSchema checked as
JSON Schema beside it), then, only on a sound structure, the rules that span blocks
(`broker.manifest.checks`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from broker.errors import ManifestError, Problem
from broker.manifest import settings_schema
from broker.manifest.checks import cross_check
from broker.manifest.models import Manifest


def load_manifest(path: Path | str) -> Manifest:
    """Read and validate one manifest file; `ManifestError` names the file and every problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(
            [Problem("$", f"cannot read: {exc.__class__.__name__}")], str(path)
        ) from exc
    except json.JSONDecodeError as exc:
        problem = Problem("$", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        raise ManifestError([problem], str(path)) from exc
    manifest = validate_manifest(data, source=str(path))
    if path.name == "manifest.json" and path.parent.name != manifest.key:
        problem = Problem(
            "$.key", f"key {manifest.key!r} does not match its folder {path.parent.name!r}"
        )
        raise ManifestError([problem], str(path))
    return manifest


def validate_manifest(data: Any, source: str = "") -> Manifest:
    problems: list[Problem] = []
    manifest: Manifest | None = None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    schema = data.get("connection", {}).get("settingsSchema") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(data.get("connection"), dict) and schema is not None:
        problems.extend(settings_schema.check_schema(schema, "$.connection.settingsSchema"))
    if manifest is not None and not problems:
        problems.extend(cross_check(manifest))
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)), source)
    assert manifest is not None
    return manifest


_PATTERN_HINTS = {
    "key": "must be lowercase letters, digits, '_' or '-', starting with a letter (at most 64)",
    "version": "must be a semantic version like 1.2.3",
}


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "string_pattern_mismatch" and str(err["loc"][-1]) in _PATTERN_HINTS:
            message = _PATTERN_HINTS[str(err["loc"][-1])]
        out.append(Problem(settings_schema.json_path(err["loc"]), message))
    return out
