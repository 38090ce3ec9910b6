"""`Egress` against a real DNS server and a real HTTPS provider on loopback: names are
checked at connect time, the connection goes to the address checked, explicit hosts have
their own pool."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest

from broker.config import Settings
from broker.errors import EgressDenied
from broker.services.proxy import Egress
from broker.services.proxy.resolver import CheckedResolver, system_or
from broker.web.state import CONTEXT
from tests.helpers import broker_client
from tests.services.proxy.conftest import PUBLIC, Provider
from tests.services.proxy.peers import DOMAIN, Zone


def wildcard(provider: Provider) -> str:
    return f"https://*.{DOMAIN}:{provider.port}/*"


def explicit(provider: Provider, host: str) -> str:
    return f"https://{host}:{provider.port}/*"


async def test_a_name_resolving_to_loopback_is_refused_under_a_wildcard(
    egress: Egress, provider: Provider
) -> None:
    route = egress.check([wildcard(provider)], f"https://evil.{DOMAIN}:{provider.port}/v1/x")
    assert not route.explicit_host
    with pytest.raises(EgressDenied) as caught:
        async with egress.request("GET", route):
            pass
    assert str(caught.value) == (
        f"evil.{DOMAIN} resolves to a loopback address, and permissions.http does not name it"
    )
    assert provider.seen == []


async def test_a_host_the_list_names_may_resolve_to_loopback(
    egress: Egress, provider: Provider
) -> None:
    host = f"named.{DOMAIN}"
    patterns = [wildcard(provider), explicit(provider, host)]
    route = egress.check(patterns, f"https://{host}:{provider.port}/v1/x?a=1")
    assert route.explicit_host and route.pattern == explicit(provider, host)
    async with egress.request(
        "POST", route, headers={"Authorization": "Bearer t"}, params={"k": "v"}, data=b"hi"
    ) as response:
        assert response.status == 200
        body = await response.json()
    assert body == {
        "host": f"{host}:{provider.port}",
        "path": "/v1/x?a=1&k=v",
        "body": "hi",
        "auth": "Bearer t",
    }


async def test_a_pooled_connection_to_a_named_host_is_not_reused_under_a_wildcard(
    egress: Egress, provider: Provider
) -> None:
    # one pool would hand the keep-alive connection made for the explicit route to the
    # wildcard route without resolving again: two pools keep them apart
    host = f"evil.{DOMAIN}"
    url = f"https://{host}:{provider.port}/v1/x"
    async with egress.request("GET", egress.check([explicit(provider, host)], url)) as response:
        await response.read()
    with pytest.raises(EgressDenied, match="resolves to a loopback address"):
        async with egress.request("GET", egress.check([wildcard(provider)], url)):
            pass
    assert len(provider.seen) == 1


async def test_a_rebinding_name_is_connected_to_at_the_address_checked(
    egress: Egress, provider: Provider, zone: Zone
) -> None:
    # the first answer is public, every later one loopback: a check that looked the name up
    # apart from the connect would let the connect reach the loopback provider
    host = f"rebind.{DOMAIN}"
    route = egress.check([wildcard(provider)], f"https://{host}:{provider.port}/v1/x")
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        async with egress.request("GET", route):
            pass
    assert caught.value.host == host  # the public address was tried (there is no route to it)
    assert zone.lookups(host) == 1
    assert provider.seen == []
    # the next connection resolves again, and is checked again
    with pytest.raises(EgressDenied, match="resolves to a loopback address"):
        async with egress.request("GET", route):
            pass
    assert zone.lookups(host) == 2
    assert provider.seen == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("private", "private"),
        ("metadata", "cloud metadata"),
        ("v6", "loopback"),
        ("mapped", "loopback"),
    ],
)
async def test_names_resolving_to_other_internal_addresses_are_refused(
    egress: Egress, provider: Provider, name: str, kind: str
) -> None:
    route = egress.check([wildcard(provider)], f"https://{name}.{DOMAIN}:{provider.port}/")
    with pytest.raises(EgressDenied, match=f"resolves to a {kind} address"):
        async with egress.request("GET", route):
            pass


async def test_a_metadata_address_is_refused_even_for_a_named_host(
    egress: Egress, provider: Provider
) -> None:
    host = f"metadata.{DOMAIN}"
    route = egress.check([explicit(provider, host)], f"https://{host}:{provider.port}/")
    with pytest.raises(EgressDenied) as caught:
        async with egress.request("GET", route):
            pass
    assert str(caught.value) == f"{host} resolves to a cloud metadata address"


async def test_the_checked_answer_is_what_the_connection_uses(nameserver: str) -> None:
    resolver = CheckedResolver(system_or([nameserver]), explicit_hosts=False)
    try:
        answers = await resolver.resolve(f"public.{DOMAIN}", 443)
    finally:
        await resolver.close()
    assert [(a["host"], a["port"]) for a in answers] == [(PUBLIC, 443)]


async def test_a_redirect_comes_back_to_the_caller(egress: Egress, provider: Provider) -> None:
    host = f"named.{DOMAIN}"
    url = f"https://{host}:{provider.port}/redirect?to=/v1/next"
    async with egress.request("GET", egress.check([explicit(provider, host)], url)) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/v1/next"
    assert [r.path for r in provider.seen] == ["/redirect"]


async def test_an_unknown_name_is_a_connection_error_not_a_refusal(
    egress: Egress, provider: Provider
) -> None:
    route = egress.check([wildcard(provider)], f"https://nx.{DOMAIN}:{provider.port}/")
    with pytest.raises(aiohttp.ClientConnectorDNSError):
        async with egress.request("GET", route):
            pass


async def test_the_app_resolves_provider_hosts_through_the_configured_nameservers(
    make_settings: Callable[..., Settings], nameserver: str, provider: Provider
) -> None:
    # the system resolver knows no egress.test: only the configured server can refuse this
    async with broker_client(make_settings(egress_nameservers=nameserver)) as client:
        egress = client.app[CONTEXT].egress
        route = egress.check([wildcard(provider)], f"https://evil.{DOMAIN}:{provider.port}/")
        with pytest.raises(EgressDenied, match="resolves to a loopback address"):
            async with egress.request("GET", route):
                pass
    with pytest.raises(RuntimeError, match="not started"):  # closed with the app
        async with egress.request("GET", route):
            pass
