"""The credential-injecting egress proxy (`/v1/runtime/proxy`, DESIGN 2 "Egress"): the
package's entry point; the rest of the broker imports from here.

- `addresses`: which addresses a connection may reach (pure; its own table test);
- `resolver`: the DNS resolver that checks every answer at connect time;
- `egress`: `Egress` (the two connection pools, `check`, `check_redirect`, `request`) and
  `EgressRoute`, a checked target.
"""

from broker.services.proxy.addresses import AddressClass, classify, refusal
from broker.services.proxy.egress import Egress, EgressRoute

__all__ = ["AddressClass", "Egress", "EgressRoute", "classify", "refusal"]
