"""Every error the broker raises on purpose.

    BrokerError                          500 internal_error
    ├── ConfigError                      500 invalid_config     (refuses to start)
    ├── ManifestError                    400 invalid_manifest   (carries every problem)
    ├── InvalidRequest                   400 invalid_request
    │   ├── InvalidSettings              400 invalid_settings   (carries every problem)
    │   ├── ConnectionTestFailed         400 connection_test_failed
    │   └── NotOAuth                     400 not_oauth
    ├── Unauthorized                     401 unauthorized
    ├── NotGranted                       403 not_granted
    ├── EgressDenied                     403 egress_denied      (names the rule that refused)
    ├── NotFound                         404 not_found
    ├── Conflict                         409 conflict
    │   ├── VersionConflict              409 version_conflict   (CAS lost)
    │   └── NeedsReauth                  409 needs_reauth
    ├── PayloadTooLarge                  413 payload_too_large
    ├── ProviderError                    502 provider_error
    ├── RuntimeUnavailable               502 runtime_unavailable
    ├── RevocationFailed                 502 revocation_failed
    ├── StoreUnavailable                 503 store_unavailable
    ├── RefreshTimeout                   503 refresh_timeout    (waited 10 s for a refresh)
    ├── LockLost                         503 lock_lost          (a fenced write's lock ran out)
    ├── RateLimited                      429 rate_limited       (carries `retry_after`)
    └── CryptoError                      500 crypto_error
        └── UnknownKey                   500 unknown_key        (names the missing key id)

Each class carries its wire code and HTTP status so the web layer maps any of them to
`{"error": code, "message": str(exc)}` without a lookup table. Messages must never contain
a secret value: callers pass names and ids, not values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is (a JSON path like `$.connection.oauth`) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class BrokerError(Exception):
    code = "internal_error"
    status = 500


class ConfigError(BrokerError):
    code = "invalid_config"
    status = 500


class InvalidRequest(BrokerError):
    code = "invalid_request"
    status = 400


class _ProblemList(BrokerError):
    """An error that lists several problems, each with its JSON path."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(str(p) for p in problems))


class ManifestError(_ProblemList):
    code = "invalid_manifest"
    status = 400


class InvalidSettings(_ProblemList, InvalidRequest):
    code = "invalid_settings"
    status = 400


class ConnectionTestFailed(InvalidRequest):
    code = "connection_test_failed"

    def __init__(self, message: str, runtime_message: str = "") -> None:
        super().__init__(message)
        self.runtime_message = runtime_message
        """The runtime's own words (secrets scrubbed), for a person reading the form."""


class NotOAuth(InvalidRequest):
    code = "not_oauth"


class Unauthorized(BrokerError):
    code = "unauthorized"
    status = 401


class NotGranted(BrokerError):
    code = "not_granted"
    status = 403


class EgressDenied(BrokerError):
    """A provider call through the egress proxy that `permissions.http` or the address rules
    refuse. The message is the rule that refused: hosts, ports and address classes, never a
    query value or a credential."""

    code = "egress_denied"
    status = 403


class NotFound(BrokerError):
    code = "not_found"
    status = 404


class Conflict(BrokerError):
    code = "conflict"
    status = 409


class VersionConflict(Conflict):
    code = "version_conflict"


class NeedsReauth(Conflict):
    code = "needs_reauth"


class PayloadTooLarge(BrokerError):
    code = "payload_too_large"
    status = 413


class ProviderError(BrokerError):
    code = "provider_error"
    status = 502


class RuntimeUnavailable(BrokerError):
    code = "runtime_unavailable"
    status = 502


class RevocationFailed(BrokerError):
    code = "revocation_failed"
    status = 502


class StoreUnavailable(BrokerError):
    code = "store_unavailable"
    status = 503


class RefreshTimeout(BrokerError):
    code = "refresh_timeout"
    status = 503


class LockLost(BrokerError):
    """A fenced write (`Store.put_fenced`) found its lock expired or taken by another
    owner: nothing was written."""

    code = "lock_lost"
    status = 503


class RateLimited(BrokerError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        """Whole seconds until a retry can succeed (the `Retry-After` header)."""
        super().__init__(message)


class CryptoError(BrokerError):
    code = "crypto_error"
    status = 500


class UnknownKey(CryptoError):
    code = "unknown_key"

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no key with id {key_id!r} in the keyring")
