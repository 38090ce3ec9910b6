"""What the benchmark scripts share: ports, waiting for a server, admin calls to a broker."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Any

ADMIN = "bench-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    """An admin call to a broker, JSON in and out."""
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def client_credentials_manifest(key: str, token_url: str, credential_key: str) -> dict[str, Any]:
    """A connector whose app token the broker fetches itself (no browser): the benches'
    OAuth connections."""
    return {
        "key": key,
        "name": key,
        "provider": "bench",
        "kind": "source",
        "version": "1.0.0",
        "connection": {
            "settingsSchema": {"type": "object", "properties": {}},
            "oauth": {
                "type": "client_credentials",
                "tokenUrlTemplate": token_url,
                "scopes": ["read"],
                "client": {"credentialKey": credential_key},
            },
        },
    }
