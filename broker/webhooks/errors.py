"""Why a webhook delivery is refused, on top of `broker.errors` so HTTP statuses come free.

    BrokerError (broker.errors)
    └── WebhookError                        every refusal below; catch this one in services
        ├── InvalidSignature                401 invalid_signature          (Unauthorized)
        ├── TimestampOutOfTolerance         401 timestamp_out_of_tolerance (Unauthorized)
        ├── MissingHeader                   400 missing_header    .header  (InvalidRequest)
        ├── MalformedHeader                 400 malformed_header  .header  (InvalidRequest)
        ├── UnknownScheme                   400 unknown_scheme    .scheme  (InvalidRequest)
        └── UnusableSecret                  500 unusable_webhook_secret    (ConfigError)

401s mean "not authentic", 400s mean "cannot even be checked": neither is ever a pass.
Messages name headers and say what is wrong with them; they never carry a secret, an
expected signature or the received header values (those are attacker-chosen text).
"""

from __future__ import annotations

from broker.errors import BrokerError, ConfigError, InvalidRequest, Unauthorized


class WebhookError(BrokerError):
    """Base of the tree; code and status come from the concrete class."""


class InvalidSignature(WebhookError, Unauthorized):
    code = "invalid_signature"
    status = 401


class TimestampOutOfTolerance(WebhookError, Unauthorized):
    code = "timestamp_out_of_tolerance"
    status = 401

    def __init__(self, tolerance: int) -> None:
        self.tolerance = tolerance
        super().__init__(f"delivery timestamp is more than {tolerance} s away from now")


class MissingHeader(WebhookError, InvalidRequest):
    code = "missing_header"
    status = 400

    def __init__(self, header: str) -> None:
        self.header = header
        super().__init__(f"missing {header} header")


class MalformedHeader(WebhookError, InvalidRequest):
    code = "malformed_header"
    status = 400

    def __init__(self, header: str, problem: str) -> None:
        self.header = header
        super().__init__(f"malformed {header} header: {problem}")


class UnknownScheme(WebhookError, InvalidRequest):
    code = "unknown_scheme"
    status = 400

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        super().__init__(f"unknown webhook signature scheme {scheme[:64]!r}")


class UnusableSecret(WebhookError, ConfigError):
    """The configured secret cannot sign anything (none, empty, not the scheme's format).

    A broker-side configuration fault, not the sender's: hence 500, not 401.
    """

    code = "unusable_webhook_secret"
    status = 500
