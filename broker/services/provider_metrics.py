"""How calls to providers are measured: each call to a token or revocation endpoint is
timed and its failure counted per connector and call
(`broker_provider_request_duration_seconds`, `broker_provider_errors_total`), under an
error label from a fixed set: a provider's own error string becomes a label only when it
is one of RFC 6749's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from broker import metrics, oauth
from broker.errors import BrokerError

Call = Literal["code_exchange", "refresh", "client_credentials", "revocation"]
# RFC 6749 5.2: a provider's own error strings would make unbounded metric labels
TOKEN_ERRORS = frozenset(
    {"invalid_request", "invalid_client", "unauthorized_client", "unsupported_grant_type"}
    | {"invalid_scope", "server_error", "temporarily_unavailable"}
)


def error_label(exc: Exception) -> str:
    """A provider call's failure as a label from a fixed set."""
    if isinstance(exc, oauth.InvalidGrant):
        return "invalid_grant"
    if isinstance(exc, oauth.InvalidClient):
        return "invalid_client"
    if isinstance(exc, oauth.OAuthError):
        if exc.transient:
            if exc.error == "unreachable" and exc.provider_status is None:
                return "unreachable"
            return "rate_limited" if exc.provider_status == 429 else "transient"
        if isinstance(exc, oauth.MalformedTokenResponse):
            return "malformed"
        return exc.error if exc.error in TOKEN_ERRORS else "error"
    return exc.code if isinstance(exc, BrokerError) else "other"


@contextmanager
def observed(connector: str, call: Call) -> Iterator[None]:
    """Time the provider call in the block and count its failure, if it fails."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        metrics.PROVIDER_ERRORS.labels(connector, call, error_label(exc)).inc()
        raise
    finally:
        metrics.PROVIDER_DURATION.labels(connector, call).observe(time.perf_counter() - started)
