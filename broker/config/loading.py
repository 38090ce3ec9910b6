"""Reading the settings so that one message names every bad variable: a value that fails
its own check is read as its default meanwhile, so the checks that need a whole `Settings`
(what `serve` needs, loading the files the settings name) still run and add their lines."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from broker.config.settings import Settings
from broker.errors import ConfigError


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (overrides win); `ConfigError` lists every bad variable."""
    settings, problems = read_settings(**overrides)
    if problems or settings is None:
        raise ConfigError.listing(problems)
    return settings


def read_settings(**overrides: Any) -> tuple[Settings | None, list[str]]:
    """The settings and one line per problem, never quoting a value. With problems, the
    settings hold the defaults of the bad variables (for further checks, not to run with);
    None when a rule across variables failed too."""
    try:
        return Settings(**overrides), []
    except ValidationError as exc:
        problems, bad = _named(exc)
    fields = Settings.model_fields
    defaults: dict[str, Any] = {}
    for name in bad:
        if name is None:
            return None, problems
        defaults[name] = fields[name].get_default(call_default_factory=True)
    try:
        return Settings(**{**overrides, **defaults}), problems
    except ValidationError as again:
        return None, problems + [p for p in _named(again)[0] if p not in problems]


def _named(exc: ValidationError) -> tuple[list[str], set[str | None]]:
    lines: list[str] = []
    bad: set[str | None] = set()
    for err in exc.errors(include_url=False, include_input=False):
        field = str(err["loc"][0]) if err["loc"] else None
        bad.add(field)
        name = f"BROKER_{field.upper()}" if field else "BROKER_*"
        lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    return lines, bad
