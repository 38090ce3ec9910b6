"""One provider call relayed for a runtime through the egress proxy (`/v1/runtime/proxy`),
with its connection's credential: the package's entry point. `broker.services.proxy` is the
checked HTTP client under it (`Egress`), held by the `Context`; this package is above the
`Context` and the runtime reads.

- `headers`: what crosses in each direction; `credentials`: what is injected;
- `body`: the runtime's request body, held or streamed; `budget`: `connection.rateLimit`;
- `observed`: the audit entry, log line and metrics of a call (`metrics`: their collector);
- `opened`: an API-key credential kept opened while its record is unchanged;
- `forward`: one call, its redirects and its 401 retry.
"""

from broker.services.relay.body import RequestBody, receive
from broker.services.relay.forward import IDEMPOTENT, Answer, check_target, forward
from broker.services.relay.headers import TARGET_HEADER, declared_length
from broker.services.relay.observed import ProxyCall

__all__ = [
    "IDEMPOTENT",
    "TARGET_HEADER",
    "Answer",
    "ProxyCall",
    "RequestBody",
    "check_target",
    "declared_length",
    "forward",
    "receive",
]
