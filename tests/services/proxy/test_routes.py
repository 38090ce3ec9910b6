"""`Egress.check` on IP literals (no DNS) and `Egress.check_redirect`: each hop held to the
list, the credential carried only while the origin stays the same."""

from __future__ import annotations

import pytest

from broker.errors import EgressDenied
from broker.services.proxy import Egress

PATTERNS = [
    "https://api.example.com/v1/*",
    "https://files.example.com/*",
    "https://*.cdn.example.com/*",
    "http://127.0.0.1:8081/*",
    "https://169.254.169.254/*",
    "https://0.0.0.0/*",
    "https://[fd00:ec2::254]/*",
    "https://[::ffff:169.254.169.254]/*",
    "https://10.1.2.3/*",
    "https://[::1]/*",
]
egress = Egress()  # check and check_redirect need no connection pools


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8081/v1", "https://10.1.2.3/x", "https://[::1]/x"]
)
def test_an_ip_literal_the_list_names_is_allowed(url: str) -> None:
    assert egress.check(PATTERNS, url).explicit_host


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://[fd00:ec2::254]/latest/", "cloud metadata"),
        ("https://[::ffff:169.254.169.254]/latest/", "cloud metadata"),
        ("https://0.0.0.0/", "unspecified"),
    ],
)
def test_some_ip_literals_are_refused_even_when_named(url: str, kind: str) -> None:
    with pytest.raises(EgressDenied, match=f"is a {kind} address$"):
        egress.check(PATTERNS, url)


@pytest.mark.parametrize("url", ["https://127.0.0.2/", "https://192.168.0.1/", "https://[::2]/"])
def test_an_ip_literal_the_list_does_not_name_is_refused(url: str) -> None:
    with pytest.raises(EgressDenied, match=r"is not in the connector's permissions\.http"):
        egress.check(PATTERNS, url)


def test_a_redirect_within_the_host_keeps_the_credential() -> None:
    first = egress.check(PATTERNS, "https://api.example.com/v1/charges?page=2")
    hop = egress.check_redirect(PATTERNS, first, "/v1/charges/2#top")
    assert hop.target.url == "https://api.example.com/v1/charges/2"
    assert hop.carries_credential and hop.same_origin_as(first)
    relative = egress.check_redirect(PATTERNS, first, "../v1/x?y=1")
    assert relative.target.url == "https://api.example.com/v1/x?y=1"
    assert relative.carries_credential


def test_a_redirect_to_another_listed_host_drops_the_credential_for_good() -> None:
    first = egress.check(PATTERNS, "https://api.example.com/v1/export")
    away = egress.check_redirect(PATTERNS, first, "https://eu.cdn.example.com/blob/1")
    assert away.target.host == "eu.cdn.example.com"
    assert not away.carries_credential and not away.same_origin_as(first)
    back = egress.check_redirect(PATTERNS, away, "https://api.example.com/v1/export/2")
    assert back.same_origin_as(first) and not back.carries_credential
    ports = ["https://a.example.com/*", "https://a.example.com:8443/*"]
    origin = egress.check(ports, "https://a.example.com/x")
    other_port = egress.check_redirect(ports, origin, "https://a.example.com:8443/x")
    assert not other_port.carries_credential


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("https://evil.example.net/steal", "redirect refused: host evil.example.net is not in"),
        ("//evil.example.net/steal", "host evil.example.net"),
        ("/v2/elsewhere", "redirect refused: the path is outside"),
        ("http://api.example.com/v1/x", "redirect refused: scheme downgrade"),
        ("https://user:pw@api.example.com/v1/x", "redirect refused: userinfo"),
        ("https://api.example.com:444/v1/x", "redirect refused: port 444"),
        ("https://169.254.169.254/latest/meta-data/", "redirect refused: 169.254.169.254 is a"),
        ("https://127.0.0.2/", "redirect refused: host 127.0.0.2 is not in"),
        ("https://a.b.cdn.example.com/", "not in"),
        ("javascript:alert(1)", "absolute http"),
    ],
)
def test_a_redirect_that_leaves_the_list_is_refused(location: str, words: str) -> None:
    first = egress.check(PATTERNS, "https://api.example.com/v1/charges")
    with pytest.raises(EgressDenied) as caught:
        egress.check_redirect(PATTERNS, first, location)
    assert words in str(caught.value)


def test_a_remembered_route_is_the_one_decided_and_follows_the_list() -> None:
    url = "https://api.example.com/v1/customers?limit=3"
    first = egress.check(PATTERNS, url)
    assert egress.check(PATTERNS, url) is first  # remembered, not decided again
    assert egress.check(PATTERNS, url + "&" + "x" * 2000).target.path == "/v1/customers"
    narrower = ["https://api.example.com/v2/*"]  # another manifest's list: its own decision
    with pytest.raises(EgressDenied, match="the path is outside"):
        egress.check(narrower, url)
    for _ in range(2):  # a refusal is never remembered as a route
        with pytest.raises(EgressDenied, match="cloud metadata"):
            egress.check(PATTERNS, "https://169.254.169.254/latest/")
