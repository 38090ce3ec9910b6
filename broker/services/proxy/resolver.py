"""The egress resolver: every DNS answer a provider connection uses is checked here, at
connect time, and the connection goes to exactly the addresses checked.

aiohttp connects to what `resolve` returns without looking the name up again, so a name
whose answer changes between a check and the connect (DNS rebinding) cannot switch the
address: there is no separate check. The connector's DNS cache is off, so every new
connection is resolved and checked anew (a pooled keep-alive connection was checked when
it was made).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from broker.errors import EgressDenied
from broker.services.proxy.addresses import refusal


class AddressRefused(OSError):
    """An `EgressDenied` on its way through aiohttp's connector, which wraps the OSErrors
    of a resolver (`ClientConnectorDNSError`); `Egress.request` unwraps it."""

    def __init__(self, denied: EgressDenied) -> None:
        super().__init__(None, str(denied))
        self.denied = denied


class CheckedResolver(AbstractResolver):
    """Resolves with `inner` and refuses a name if any of its addresses is refused for the
    connections this resolver serves: explicitly named hosts, or any other."""

    def __init__(self, inner: AbstractResolver, *, explicit_hosts: bool) -> None:
        self._inner = inner
        self._explicit = explicit_hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            address = ipaddress.ip_address(answer["host"].partition("%")[0])
            kind = refusal(address, explicit_host=self._explicit)
            if kind is not None:
                # one refused address refuses the name: a connect may try any of them
                named = "" if self._explicit else ", and permissions.http does not name it"
                raise AddressRefused(
                    EgressDenied(f"{host.rstrip('.')} resolves to a {kind.value} address{named}")
                )
        return answers

    async def close(self) -> None:
        await self._inner.close()


def system_or(nameservers: Sequence[str]) -> AbstractResolver:
    """aiodns (c-ares) asking `nameservers` (`ip[:port]`), or the system's getaddrinfo."""
    if nameservers:
        return aiohttp.AsyncResolver(nameservers=list(nameservers))
    return aiohttp.ThreadedResolver()
