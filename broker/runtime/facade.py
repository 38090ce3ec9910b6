"""The module-level `Secrets`, `OAuth` and `Http`: one default client built from the environment on
first use, or whatever backend `use_client()` installed (the test runtime does).
"""

from __future__ import annotations

from broker.runtime.api import OAuthAPI, RuntimeBackend, SecretsAPI
from broker.runtime.client import BrokerClient
from broker.runtime.http import HttpAPI

_installed: RuntimeBackend | None = None
_default: BrokerClient | None = None


def current_backend() -> RuntimeBackend:
    """The installed backend, else the default client built from the environment."""
    global _default
    if _installed is not None:
        return _installed
    if _default is None:
        _default = BrokerClient()
    return _default


def use_client(backend: RuntimeBackend | None) -> RuntimeBackend | None:
    """Route `Secrets`/`OAuth`/`Http` to `backend` (None: the environment's); returns the old."""
    global _installed
    previous, _installed = _installed, backend
    return previous


async def aclose() -> None:
    """Close the default client's session (installed clients belong to whoever made them)."""
    global _default
    client, _default = _default, None
    if client is not None:
        await client.close()


Secrets = SecretsAPI(current_backend)
OAuth = OAuthAPI(current_backend)
Http = HttpAPI(current_backend)
