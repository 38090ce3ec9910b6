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
        super().__init__(message or self.code)


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


class BrokerUnavailable(BrokerRuntimeError):
    code = "broker_unavailable"
    status = 503


_BY_CODE: dict[str, type[BrokerRuntimeError]] = {
    cls.code: cls
    for cls in (Unauthorized, NotGranted, NotFound, NeedsReauth, NotOAuth, ProviderError)
}
_BY_CODE["store_unavailable"] = BrokerUnavailable


def error_class(code: str) -> type[BrokerRuntimeError]:
    """The SDK exception for a wire error code (the test runtime maps `broker.errors` too)."""
    return _BY_CODE.get(code, BrokerRuntimeError)
