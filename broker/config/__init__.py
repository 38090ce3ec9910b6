"""Configuration: one `Settings`, read once from `BROKER_*` environment variables.

- `settings`: the `Settings` model, its defaults and per-variable checks;
- `values`: the shapes values take (lists, URLs, origins, the events secret);
- `loading`: `load_settings`, which names every bad variable in one `ConfigError`.
"""

from broker.config.loading import load_settings, read_settings
from broker.config.settings import Settings
from broker.config.values import (
    CRASH_POINTS,
    LOGO_TYPES,
    STORE_SCHEMES,
    events_signing_key,
    origin_of,
)

__all__ = [
    "CRASH_POINTS",
    "LOGO_TYPES",
    "STORE_SCHEMES",
    "Settings",
    "events_signing_key",
    "load_settings",
    "origin_of",
    "read_settings",
]
