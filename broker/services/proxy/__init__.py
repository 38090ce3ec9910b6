"""The credential-injecting egress proxy (`/v1/runtime/proxy`, DESIGN 2 "Egress"): the
package's entry point; the rest of the broker imports from here.

- `addresses`: which addresses a connection may reach (pure; its own table test);
- `resolver`: the DNS resolver that checks every answer at connect time;
- `egress`: `Egress` (the two connection pools, `check`, `check_redirect`, `request`) and
  `EgressRoute`, a checked target.
- `headers`: what crosses in each direction; `credentials`: what is injected;
- `body`: the runtime's request body, held or streamed; `budget`: `connection.rateLimit`;
- `observed`: the audit entry, log line and metrics of a call;
- `forward`: one call, its redirects and its 401 retry.
"""

from broker.services.proxy.addresses import AddressClass, classify, refusal
from broker.services.proxy.body import RequestBody, receive
from broker.services.proxy.egress import Egress, EgressRoute
from broker.services.proxy.forward import IDEMPOTENT, Answer, check_target, forward
from broker.services.proxy.headers import TARGET_HEADER, declared_length
from broker.services.proxy.observed import ProxyCall

__all__ = [
    "IDEMPOTENT",
    "TARGET_HEADER",
    "AddressClass",
    "Answer",
    "Egress",
    "EgressRoute",
    "ProxyCall",
    "RequestBody",
    "check_target",
    "classify",
    "declared_length",
    "forward",
    "receive",
    "refusal",
]
