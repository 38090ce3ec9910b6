"""testConnection: ask the platform runtime whether candidate settings work (DESIGN 7).

The broker POSTs the candidate settings as JSON to
`${BROKER_RUNTIME_URL}/api/v1/extensions/<tenant_id>/<connector>/routes<route>`; 2xx accepts,
4xx rejects with the runtime's message, anything else means the runtime could not answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from broker.errors import ConnectionTestFailed, RuntimeUnavailable
from broker.manifest import Manifest
from broker.services.context import Context
from broker.services.provider_send import read_capped

TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3)
MAX_MESSAGE = 300
MAX_ANSWER_BYTES = 64 * 1024


async def test_settings(
    ctx: Context,
    manifest: Manifest,
    tenant_id: str,
    settings: Mapping[str, Any],
    secret_values: list[str],
) -> None:
    """Raise unless the runtime accepts `settings`; no-op without a runtime URL or route."""
    check = manifest.connection.test_connection
    if ctx.settings.runtime_url is None or check is None:
        return
    url = (
        f"{ctx.settings.runtime_url}/api/v1/extensions/{quote(tenant_id, safe='')}/"
        f"{manifest.key}/routes{check.route}"
    )
    try:
        async with ctx.http.request(
            check.method, url, json=dict(settings), timeout=TIMEOUT
        ) as resp:
            body = await read_capped(resp, MAX_ANSWER_BYTES)
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise RuntimeUnavailable(
            f"testConnection could not reach the runtime ({type(exc).__name__})"
        ) from None
    if 200 <= status < 300:
        return
    if body is None:
        raise RuntimeUnavailable(
            f"testConnection answered HTTP {status} with a body larger than "
            f"{MAX_ANSWER_BYTES // 1024} KiB"
        )
    message = _scrub(_message_of(body), secret_values)
    if 400 <= status < 500:
        raise ConnectionTestFailed(
            f"testConnection rejected the settings ({status}): {message}", message
        )
    raise RuntimeUnavailable(f"testConnection failed in the runtime ({status})")


def _message_of(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json decodes
        return "no message"
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])[:MAX_MESSAGE]
    return "no message"


def _scrub(message: str, secret_values: list[str]) -> str:
    # a runtime may echo the key it was given back in its error; never pass that on
    for value in secret_values:
        if value:
            message = message.replace(value, "********")
    return message
