"""The SDK connector code uses to read its credentials from the broker.

    await Secrets.get("api_key")          -> str
    await OAuth.access_token(min_ttl=60)  -> str   (alias: OAuth.accessToken)
    await OAuth.refresh()                 -> AccessToken   (the provider answered 401)
    await Http.get(url)                   -> HttpResponse  (through the egress proxy)

Configured from `BROKER_URL` and `BROKER_RUNTIME_TOKEN`; the module-level `Secrets`,
`OAuth` and `Http` share one lazily created `BrokerClient`, closed by
`await broker.runtime.aclose()`.
`use_client()` swaps the backend (`broker.runtime.testing` installs fakes through it).
Every failure is a `BrokerRuntimeError` (the tree is in `broker.runtime.errors`); only
`BrokerUnavailable` is retried. No message, repr or log line ever holds a secret value or
the runtime token.

    errors   the exception tree, one class per wire error code
    wire     `Secret`, `AccessToken`, `HttpResponse` and parsing the broker's answers
    api      `Secrets`/`OAuth` calls over any `RuntimeBackend`
    http     `Http` calls (through the broker's egress proxy) over any backend
    cache    `RuntimeCache`, the few seconds a secret or token is kept in process
    transport  one request to the broker: timeouts, retries, errors
    client   `BrokerClient`, the runtime API over HTTP (aiohttp)
    facade   the module-level `Secrets`, `OAuth`, `Http`, `use_client`, `aclose`
    egress   the broker's `permissions.http` rules, for the test runtime's fake
    fake_http  `FakeHttp`: the test runtime's egress proxy (canned answers, calls recorded)
    testing  `connector_test_runtime`, fakes for connector tests

The SDK runs inside connector processes: it imports nothing of the server (no store, no
crypto, no redis), only the pure `broker.errors`; `tests/runtime/test_runtime_sdk_imports.py`
checks it.
"""

from broker.runtime.api import OAuthAPI, RuntimeBackend, SecretsAPI, min_ttl_seconds
from broker.runtime.client import TOKEN_ENV, URL_ENV, BrokerClient
from broker.runtime.errors import (
    BrokerRuntimeError,
    BrokerUnavailable,
    EgressDenied,
    NeedsReauth,
    NotConfigured,
    NotFound,
    NotGranted,
    NotOAuth,
    PayloadTooLarge,
    ProviderError,
    RateLimited,
    SecretNotSet,
    Unauthorized,
    error_class,
)
from broker.runtime.facade import Http, OAuth, Secrets, aclose, current_backend, use_client
from broker.runtime.http import HttpAPI
from broker.runtime.wire import (
    AccessToken,
    HttpResponse,
    Secret,
    parse_access_token,
    parse_secret,
    secret_text,
)

__all__ = [
    "TOKEN_ENV",
    "URL_ENV",
    "AccessToken",
    "BrokerClient",
    "BrokerRuntimeError",
    "BrokerUnavailable",
    "EgressDenied",
    "Http",
    "HttpAPI",
    "HttpResponse",
    "NeedsReauth",
    "NotConfigured",
    "NotFound",
    "NotGranted",
    "NotOAuth",
    "OAuth",
    "OAuthAPI",
    "PayloadTooLarge",
    "ProviderError",
    "RateLimited",
    "RuntimeBackend",
    "Secret",
    "SecretNotSet",
    "Secrets",
    "SecretsAPI",
    "Unauthorized",
    "aclose",
    "current_backend",
    "error_class",
    "min_ttl_seconds",
    "parse_access_token",
    "parse_secret",
    "secret_text",
    "use_client",
]
