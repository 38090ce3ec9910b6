"""Which addresses a provider call may connect to (pure: `ipaddress` only).

Any address that is not public is refused unless the route's `permissions.http` pattern
names the host explicitly (no wildcard): a connector for an on-premises API lists its host,
and a wildcard or a DNS answer can never steer a call into the broker's own network.

Some addresses are refused even then: the cloud metadata endpoints (they hand out the
broker's own instance credentials, which no provider call needs and which an operator
listing such a host by mistake must not expose), unspecified (`0.0.0.0` connects to the
local host on Linux), multicast and broadcast. An IPv6 address that embeds an IPv4 one
(IPv4-mapped, 6to4, NAT64) is judged by the IPv4 address it leads to.
"""

from __future__ import annotations

import enum
import functools
import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressClass(enum.Enum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    SHARED = "shared (CGNAT)"
    RESERVED = "reserved"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    METADATA = "cloud metadata"


NEVER = frozenset({AddressClass.METADATA, AddressClass.UNSPECIFIED, AddressClass.MULTICAST})
"""Refused even for a host that permissions.http names explicitly."""

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public-looking address)
    )
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def classify(address: IPAddress) -> AddressClass:
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return classify(embedded)
    if address in METADATA:
        return AddressClass.METADATA
    if address.is_unspecified:
        return AddressClass.UNSPECIFIED
    if address.is_loopback:
        return AddressClass.LOOPBACK
    if address.is_link_local:
        return AddressClass.LINK_LOCAL
    if address.is_multicast or address == _BROADCAST:
        return AddressClass.MULTICAST
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return AddressClass.SHARED
    if address.is_reserved:
        return AddressClass.RESERVED
    if address.is_private or not address.is_global:
        return AddressClass.PRIVATE
    return AddressClass.PUBLIC


@functools.lru_cache(maxsize=1024)
def refusal(address: IPAddress, *, explicit_host: bool) -> AddressClass | None:
    """The class that refuses a connection to `address`; None: it may be connected to.
    Cached (a pure function of its arguments): `ipaddress`'s properties are computed anew on
    each access, a dozen per address, and a broker connects to few addresses."""
    kind = classify(address)
    if kind is AddressClass.PUBLIC or (explicit_host and kind not in NEVER):
        return None
    return kind


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
