"""Status and body checks shared by the token (RFC 6749 5) and revocation (RFC 7009 2.2)
endpoints. Bodies may hold tokens, so a failure names what was wrong, never the content."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime

from broker.oauth.errors import (
    InvalidClient,
    MalformedTokenResponse,
    TransientProviderError,
    endpoint_error,
)

_JSON_KINDS: dict[type, str] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,40}/[a-z0-9!#$&^_.+-]{1,60}")


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`; junk -> a placeholder."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    if not value:
        return "no content type"
    return value if _MEDIA_TYPE.fullmatch(value) else "an odd content type"


def _decode(content_type: str | None, body: bytes) -> tuple[object, str | None]:
    """(decoded JSON, None) or (None, what the body was instead)."""
    kind = media_type(content_type)
    if "html" in kind:  # a login or error page from a proxy: say so, not what it says
        return None, "an HTML page"
    try:
        return json.loads(body), None
    except (ValueError, RecursionError):
        # ValueError covers bad syntax, bad UTF-8 and oversized numbers; RecursionError is
        # nesting deeper than the decoder goes (`[[[[...`), which must not escape either:
        # it once ended the background refresher for every connection
        return None, f"not valid JSON ({kind})"


def json_object(
    endpoint: str, status: int, content_type: str | None, body: bytes
) -> dict[str, object]:
    """The body of a 2xx answer as a JSON object, or MalformedTokenResponse saying why not."""
    data, problem = _decode(content_type, body)
    if problem is None and not isinstance(data, dict):
        problem = f"a JSON {_JSON_KINDS.get(type(data), 'value')}, not an object"
    if problem is not None:
        raise MalformedTokenResponse(
            f"{endpoint} endpoint answered HTTP {status} with {problem}", provider_status=status
        )
    assert isinstance(data, dict)
    return data


_DELAY_SECONDS = re.compile(r"[0-9]{1,10}")


def retry_after_seconds(header: str | None, now: float) -> float | None:
    """RFC 9110 10.2.3 `Retry-After` (delay-seconds or an HTTP-date) as seconds from `now`;
    None when absent or unreadable: a junk header must not pause a grant on a guess."""
    if header is None:
        return None
    value = header.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # `-0000`; an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def raise_for_status(
    endpoint: str,
    status: int,
    content_type: str | None,
    body: bytes,
    *,
    redact: Sequence[str] = (),
    retry_after: float | None = None,
) -> None:
    """Raise the typed error for a non-2xx answer; return quietly for a 2xx one.
    `retry_after`: the answer's `Retry-After`, in seconds, carried by a transient error."""
    if status in (408, 429) or status >= 500:
        raise TransientProviderError(
            f"{endpoint} endpoint answered HTTP {status}; try again later",
            provider_status=status,
            retry_after=retry_after,
        )
    if 200 <= status < 300:
        return
    data, _ = _decode(content_type, body)
    if isinstance(data, dict) and "error" in data:
        raise endpoint_error(
            endpoint,
            data["error"],
            data.get("error_description"),
            provider_status=status,
            redact=redact,
        )
    if status == 401:  # RFC 6749 5.2: invalid_client may come as a bare 401
        raise InvalidClient(
            f"{endpoint} endpoint answered HTTP 401: client authentication failed",
            provider_status=status,
        )
    raise MalformedTokenResponse(
        f"{endpoint} endpoint answered HTTP {status} without an OAuth error object",
        provider_status=status,
    )
