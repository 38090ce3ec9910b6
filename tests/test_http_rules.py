"""`permissions.http`: pattern grammar, strict target parsing and the decision, table-driven
(no network: the address rules that resolve names are tests/services/proxy)."""

from __future__ import annotations

import pytest

from broker.errors import EgressDenied
from broker.http_rules.permissions import check, parse_pattern, parse_target, pattern_problem

PATTERNS = [
    "https://api.stripe.com/v1/*",
    "https://*.myshopify.com/admin/*",
    "https://files.example.com/exact",
    "https://api.example.com:8443/*",
    "http://127.0.0.2:8081/v1/*",
    "https://shop.myshopify.com/*",
]

ALLOWED = [
    # (target, normalized URL sent, pattern that allowed it, explicit host)
    ("https://api.stripe.com/v1/charges", None, PATTERNS[0], True),
    ("https://api.stripe.com/v1/", None, PATTERNS[0], True),
    ("https://API.Stripe.COM./v1/x?limit=3", "https://api.stripe.com/v1/x?limit=3", None, True),
    ("https://api.stripe.com:443/v1/x", "https://api.stripe.com/v1/x", None, True),
    ("https://api.stripe.com/v1/./a/../b", "https://api.stripe.com/v1/b", None, True),
    ("https://api.stripe.com/%76%31/%7Ex", "https://api.stripe.com/v1/~x", None, True),
    ("https://api.stripe.com/v1/a%2fb", "https://api.stripe.com/v1/a%2Fb", None, True),
    ("https://api.stripe.com/v1/a b", None, None, None),  # whitespace: refused below instead
    ("https://api.stripe.com/v1/caf\u00e9", "https://api.stripe.com/v1/caf%C3%A9", None, True),
    ("https://acme.myshopify.com/admin/api/orders.json", None, PATTERNS[1], False),
    ("https://shop.myshopify.com/admin/x", None, PATTERNS[5], True),  # explicit wins
    ("https://files.example.com/exact", None, PATTERNS[2], True),
    ("https://api.example.com:8443/anything", None, PATTERNS[3], True),
    ("http://127.0.0.2:8081/v1/ping", None, PATTERNS[4], True),
    ("https://xn--bcher-kva.example/p", None, None, None),  # not listed: refused below
]


@pytest.mark.parametrize(("url", "sent", "pattern", "explicit"), ALLOWED)
def test_allowed(url: str, sent: str | None, pattern: str | None, explicit: bool | None) -> None:
    if explicit is None:
        with pytest.raises(EgressDenied):
            check(PATTERNS, url)
        return
    allowed = check(PATTERNS, url)
    assert allowed.target.url == (sent or url)
    assert allowed.explicit_host is explicit
    if pattern is not None:
        assert allowed.pattern.text == pattern


DENIED = [
    # (target, words the rule's message has)
    ("https://evil.com/v1/x", "host evil.com is not in"),
    ("https://api.stripe.com.evil.com/v1/x", "not in"),
    ("https://stripe.com/v1/x", "not in"),
    ("https://a.b.myshopify.com/admin/x", "not in"),  # `*` is one label
    ("https://myshopify.com/admin/x", "not in"),
    ("http://api.stripe.com/v1/x", "scheme downgrade"),
    ("https://127.0.0.2:8081/v1/x", "allowed only over http"),
    ("https://api.stripe.com:8443/v1/x", "port 8443 of api.stripe.com is not allowed (only 443)"),
    ("https://api.example.com/x", "port 443"),
    ("https://api.stripe.com/v2/x", "the path is outside what api.stripe.com allows (/v1/*)"),
    ("https://api.stripe.com/v1", "outside"),
    ("https://api.stripe.com/v1/../admin", "outside"),
    ("https://api.stripe.com/v1/%2e%2e/admin", "outside"),
    ("https://api.stripe.com/v1/.%2E/admin", "outside"),
    ("https://api.stripe.com/v1/x/../../admin", "outside"),
    ("https://api.stripe.com/v1/a%2F..%2F..%2Fadmin", "dot segment behind an encoded slash"),
    ("https://api.stripe.com/v1/a%5C..%5Cadmin", "dot segment behind an encoded slash"),
    ("https://files.example.com/exact/more", "outside"),
    ("https://user:pw@api.stripe.com/v1/x", "userinfo"),
    ("https://@api.stripe.com/v1/x", "userinfo"),
    ("https://api.stripe.com/v1/x#frag", "fragment"),
    ("https://api.stripe.com/v1/a b", "whitespace"),
    ("https://api.stripe.com/v1/x\n", "whitespace"),
    ("https://api.stripe.com\t.evil.com/v1/x", "whitespace"),
    ("https://api.stripe.com/v1/%zz", "malformed percent-encoding"),
    ("https://api.stripe.com/v1/x?a=%zz", "malformed percent-encoding"),
    ("ftp://api.stripe.com/v1/x", "absolute http"),
    ("//api.stripe.com/v1/x", "absolute http"),
    ("/v1/x", "absolute http"),
    ("https:api.stripe.com/v1/x", "absolute http"),
    ("https://api.stripe.com:0/v1/x", "port is not a number"),
    ("https://api.stripe.com:99999/v1/x", "port is not a number"),
    ("https://api.stripe.com:x/v1/x", "port is not a number"),
    ("https://127.1/v1/x", "canonical IPv4"),
    ("https://2130706433/v1/x", "canonical IPv4"),
    ("https://0x7f.0.0.1/v1/x", "canonical IPv4"),
    ("https://127.000.000.002:8081/v1/x", "canonical IPv4"),
    ("https://[::1%25lo]/v1/x", "no valid host"),
    ("https://[zz::1]/v1/x", "does not parse"),
    ("https://[1::2::3]/v1/x", "does not parse"),
    ("https://[v1.api.stripe.com]/v1/x", "no valid host"),
    ("https://exa_mple..com/", "not a valid domain name"),
    ("https://-bad.example.com/", "not a valid domain name"),
    ("https://api.stripe.com\\@evil.com/v1/x", "userinfo"),
    ("https:///v1/x", "no valid host"),
]


@pytest.mark.parametrize(("url", "words"), DENIED)
def test_denied(url: str, words: str) -> None:
    with pytest.raises(EgressDenied) as caught:
        check(PATTERNS, url)
    assert words in str(caught.value)
    assert caught.value.code == "egress_denied" and caught.value.status == 403


def test_a_query_value_never_reaches_the_message() -> None:
    canary = "canary-sk_live_51Hq"
    for url in (
        f"https://evil.com/v1/x?key={canary}",
        f"https://api.stripe.com/v2/x?key={canary}",
        f"https://api.stripe.com/{canary}?key={canary}",
        f"https://api.stripe.com:8443/v1/x?key={canary}",
        f"http://api.stripe.com/v1/x?key={canary}",
    ):
        with pytest.raises(EgressDenied) as caught:
            check(PATTERNS, url)
        assert canary not in str(caught.value)


def test_an_international_host_is_matched_by_its_a_labels() -> None:
    allowed = check(["https://xn--bcher-kva.example/*"], "https://B\u00fccher.example/p")
    assert allowed.target.host == "xn--bcher-kva.example"
    assert allowed.target.url == "https://xn--bcher-kva.example/p"


def test_ipv6_literals_are_normalized() -> None:
    allowed = check(["https://[2001:db8::1]/*"], "https://[2001:DB8:0::1]:443/a")
    assert allowed.target.url == "https://[2001:db8::1]/a"
    assert allowed.target.where == "[2001:db8::1]"


def test_the_query_is_kept_and_encoded() -> None:
    target = parse_target("https://api.stripe.com/v1/x?a=1&b=%2F&c=caf\u00e9&d=<x>")
    assert target.query == "a=1&b=%2F&c=caf%C3%A9&d=%3Cx%3E"


PATTERN_PROBLEMS = [
    ("https://*.com/*", "two labels"),
    ("https://*/*", "first label"),
    ("https://*.*.example.com/*", "first label"),
    ("https://api.*.example.com/*", "first label"),
    ("https://a*.example.com/*", "first label"),
    ("https://*.127.0.0.1/*", "two labels"),
    ("https://api.example.com/v1/*/x", "may only end the path"),
    ("https://api.example.com/v1*", "may only end the path"),
    ("https://api.example.com", "needs a path"),
    ("https://api.example.com/v1/../x/*", "normal form"),
    ("https://api.example.com/*?x=1", "no query"),
    ("https://api.example.com/*#x", "no query"),
    ("http://api.example.com/*", "https"),
    ("http://*.localhost.test/*", "https"),
    ("https://u@api.example.com/*", "userinfo"),
    ("ftp://api.example.com/*", "absolute http"),
    ("https://api.example.com:0/*", "port"),
    ("api.example.com/*", "absolute http"),
]


@pytest.mark.parametrize(("pattern", "words"), PATTERN_PROBLEMS)
def test_pattern_problems(pattern: str, words: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and words in problem


@pytest.mark.parametrize(
    ("pattern", "host", "port", "path", "prefix", "wildcard"),
    [
        ("https://api.stripe.com/*", "api.stripe.com", 443, "/", True, False),
        ("https://*.api.mailchimp.com/3.0/*", "api.mailchimp.com", 443, "/3.0/", True, True),
        ("http://localhost:8080/v1/x", "localhost", 8080, "/v1/x", False, False),
        ("http://[::1]:9/*", "::1", 9, "/", True, False),
        ("https://API.Example.COM./*", "api.example.com", 443, "/", True, False),
    ],
)
def test_pattern_grammar(
    pattern: str, host: str, port: int, path: str, prefix: bool, wildcard: bool
) -> None:
    parsed = parse_pattern(pattern)
    assert (parsed.host, parsed.port, parsed.path, parsed.prefix) == (host, port, path, prefix)
    assert parsed.wildcard is wildcard and parsed.explicit is not wildcard


def test_a_bad_pattern_in_the_list_is_a_manifest_problem_not_a_denial() -> None:
    # check() parses the list the loaded manifest was validated with; a bad entry here is a
    # programming error and says so rather than answering 403
    with pytest.raises(ValueError, match="two labels"):
        check(["https://*.com/*"], "https://a.com/")
