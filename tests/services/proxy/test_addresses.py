"""The address classes, table-driven: what a provider connection may reach."""

from __future__ import annotations

import ipaddress

import pytest

from broker.services.proxy import AddressClass, classify, refusal

C = AddressClass
TABLE = [
    ("93.184.215.14", C.PUBLIC),
    ("8.8.8.8", C.PUBLIC),
    ("2606:4700:4700::1111", C.PUBLIC),
    ("127.0.0.1", C.LOOPBACK),
    ("127.255.255.254", C.LOOPBACK),
    ("::1", C.LOOPBACK),
    ("10.0.0.1", C.PRIVATE),
    ("172.16.0.1", C.PRIVATE),
    ("172.31.255.255", C.PRIVATE),
    ("192.168.1.1", C.PRIVATE),
    ("fc00::1", C.PRIVATE),
    ("fd12:3456::1", C.PRIVATE),
    ("169.254.1.1", C.LINK_LOCAL),
    ("fe80::1", C.LINK_LOCAL),
    ("100.64.0.1", C.SHARED),
    ("100.127.255.254", C.SHARED),
    ("0.0.0.0", C.UNSPECIFIED),  # noqa: S104 (an address to classify, not a bind)
    ("::", C.UNSPECIFIED),
    ("224.0.0.1", C.MULTICAST),
    ("ff02::1", C.MULTICAST),
    ("255.255.255.255", C.MULTICAST),
    ("240.0.0.1", C.RESERVED),
    ("192.0.2.1", C.PRIVATE),  # documentation ranges: not global
    ("198.18.0.1", C.PRIVATE),  # benchmarking
    ("169.254.169.254", C.METADATA),
    ("169.254.170.2", C.METADATA),
    ("fd00:ec2::254", C.METADATA),
    ("100.100.100.200", C.METADATA),
    ("168.63.129.16", C.METADATA),
    # IPv6 forms of IPv4 addresses are judged by the IPv4 address
    ("::ffff:127.0.0.1", C.LOOPBACK),
    ("::ffff:10.0.0.1", C.PRIVATE),
    ("::ffff:169.254.169.254", C.METADATA),
    ("::ffff:93.184.215.14", C.PUBLIC),
    ("2002:7f00:1::", C.LOOPBACK),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::", C.METADATA),  # 6to4 of 169.254.169.254
    ("64:ff9b::a00:1", C.PRIVATE),  # NAT64 of 10.0.0.1
    ("64:ff9b::5db8:d70e", C.PUBLIC),  # NAT64 of 93.184.215.14
    ("::7f00:1", C.RESERVED),  # IPv4-compatible (deprecated)
    ("2001:db8::1", C.PRIVATE),
]


@pytest.mark.parametrize(("address", "kind"), TABLE)
def test_classify(address: str, kind: AddressClass) -> None:
    assert classify(ipaddress.ip_address(address)) is kind


@pytest.mark.parametrize(("address", "kind"), TABLE)
def test_refusal(address: str, kind: AddressClass) -> None:
    ip = ipaddress.ip_address(address)
    public = kind is C.PUBLIC
    assert (refusal(ip, explicit_host=False) is None) is public
    never = kind in (C.METADATA, C.UNSPECIFIED, C.MULTICAST)
    assert refusal(ip, explicit_host=True) == (kind if never else None)
