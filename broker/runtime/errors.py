"""The SDK's exceptions. Every failure is a `BrokerRuntimeError`, which is also a
`broker.errors.BrokerError` carrying the wire `code` and HTTP `status`:

    BrokerRuntimeError                  any other refusal or a malformed answer
    ├── NotConfigured                   BROKER_URL / BROKER_RUNTIME_TOKEN missing or invalid
    ├── Unauthorized                    401 unauthorized: runtime token bad, expired, revoked
    ├── NotGranted                      403 not_granted: the manifest does not grant the name
    ├── NotFound                        404 not_found
    │   └── SecretNotSet                granted, but this connection has no value for it
    ├── NeedsReauth                     409 needs_reauth: a human must reconnect the account
    ├── NotOAuth                        400 not_oauth: an OAuth call on an API-key connection
    ├── ProviderError                   502 provider_error: refresh failed, no valid token left
    ├── EgressDenied                    403 egress_denied: a URL outside `permissions.http`
    ├── RateLimited                     429 rate_limited: over the connection's rate budget
    ├── PayloadTooLarge                 413 payload_too_large: a proxied body over the limit
    └── BrokerUnavailable               503, a proxy's 502/504, network errors, timeouts

Each is also the matching `broker.errors` class, so code catching either catches both;
`broker.errors` is pure (no I/O, nothing of the server), which is why the SDK may build on it.
"""

from __future__ import annotations

from broker import errors


class BrokerRuntimeError(errors.BrokerError):
    def __init__(
        self, message: str = "", *, status: int | None = None, code: str | None = None
    ) -> None:
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        # Exception's own: a server class may want other arguments (errors.RateLimited does)
        Exception.__init__(self, message or self.code)


class NotConfigured(BrokerRuntimeError, errors.ConfigError):
    pass


class Unauthorized(BrokerRuntimeError, errors.Unauthorized):
    pass


class NotGranted(BrokerRuntimeError, errors.NotGranted):
    pass


class NotFound(BrokerRuntimeError, errors.NotFound):
    pass


class SecretNotSet(NotFound):
    pass


class NeedsReauth(BrokerRuntimeError, errors.NeedsReauth):
    pass


class NotOAuth(BrokerRuntimeError, errors.NotOAuth):
    pass


class ProviderError(BrokerRuntimeError, errors.ProviderError):
    pass


class EgressDenied(BrokerRuntimeError, errors.EgressDenied):
    pass


class RateLimited(BrokerRuntimeError, errors.RateLimited):
    retry_after: int = 0  # the broker's Retry-After in seconds (0: it did not say)


class PayloadTooLarge(BrokerRuntimeError, errors.PayloadTooLarge):
    pass


class BrokerUnavailable(BrokerRuntimeError):
    code = "broker_unavailable"
    status = 503


_BY_CODE: dict[str, type[BrokerRuntimeError]] = {
    cls.code: cls
    for cls in (
        Unauthorized,
        NotGranted,
        NotFound,
        NeedsReauth,
        NotOAuth,
        ProviderError,
        EgressDenied,
        RateLimited,
        PayloadTooLarge,
    )
}
_BY_CODE["store_unavailable"] = BrokerUnavailable


def error_class(code: str) -> type[BrokerRuntimeError]:
    """The SDK exception for a wire error code (the test runtime maps `broker.errors` too)."""
    return _BY_CODE.get(code, BrokerRuntimeError)
