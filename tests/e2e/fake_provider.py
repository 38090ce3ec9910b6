"""A fake OAuth provider whose refresh tokens rotate, for the kill-point tests: an authorize
endpoint that consents at once, and a token endpoint per behaviour on reuse of a spent refresh
token - `/window/token` honours a reuse window, `/revoking/token` revokes the whole grant (and
records the reuse as a violation: a broker must never do that to such a provider).

It can end a refresh itself: SIGKILL the broker, or SIGKILL the store, right after it has
rotated the grant and before the answer leaves - the broker then never sees it, which is what
"the provider answered, the broker did not store it" means from the broker's side.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

from aiohttp import web

Kind = Literal["window", "revoking"]
ACCESS_TTL = 3600


@dataclass
class Grant:
    kind: Kind
    reuse_seconds: float
    access: list[str] = field(default_factory=list)
    """Every access token issued, oldest first: each stays valid until it expires (as Xero's
    and Microsoft's do), unless the grant is revoked."""
    refresh: str = ""
    spent: dict[str, float] = field(default_factory=dict)
    """Refresh tokens already exchanged, and when."""
    presented: list[str] = field(default_factory=list)
    reuses: int = 0
    revoked: bool = False

    @property
    def newest(self) -> str:
        return self.access[-1]


class FakeProvider:
    def __init__(self, reuse_seconds: float = 600) -> None:
        self.reuse_seconds = reuse_seconds
        self.grants: list[Grant] = []
        self._codes: set[str] = set()
        self._by_refresh: dict[str, Grant] = {}
        self._issued_at: dict[str, float] = {}
        self.violations: list[str] = []
        self._on_answer: dict[int, tuple[Callable[[], None], asyncio.Event]] = {}
        self.app = web.Application()
        self.app.router.add_get("/authorize", self.authorize)
        self.app.router.add_post("/{kind}/token", self.token)

    def end_refresh_with(self, grant: Grant, action: Callable[[], None]) -> asyncio.Event:
        """Run `action` (once) after the grant's next refresh rotated it, before answering;
        the event is set once it ran."""
        done = asyncio.Event()
        self._on_answer[id(grant)] = (action, done)
        return done

    def kill_process(self, pid: int) -> Callable[[], None]:
        return lambda: os.kill(pid, signal.SIGKILL)

    def grant_of(self, access_token: str) -> Grant:
        (grant,) = (g for g in self.grants if access_token in g.access)
        return grant

    def valid(self, access_token: str) -> bool:
        """What the provider's API would say of this access token right now."""
        found = [g for g in self.grants if access_token in g.access]
        issued = self._issued_at.get(access_token, 0.0)
        return bool(found) and not found[0].revoked and time.time() < issued + ACCESS_TTL

    async def authorize(self, request: web.Request) -> web.Response:
        code = secrets.token_urlsafe(16)
        self._codes.add(code)
        query = urlencode({"code": code, "state": request.query["state"]})
        raise web.HTTPFound(f"{request.query['redirect_uri']}?{query}")

    async def token(self, request: web.Request) -> web.Response:
        kind: Kind = "window" if request.match_info["kind"] == "window" else "revoking"
        form = await request.post()
        if form.get("grant_type") == "authorization_code":
            self._codes.remove(str(form["code"]))
            grant = Grant(kind, self.reuse_seconds if kind == "window" else 0)
            self.grants.append(grant)
            return web.json_response(self._issue(grant))
        presented = str(form.get("refresh_token"))
        grant_found = self._by_refresh.get(presented)
        if grant_found is None or grant_found.revoked:
            return _invalid_grant()
        grant = grant_found
        grant.presented.append(presented)
        if presented != grant.refresh:
            spent_for = time.time() - grant.spent[presented]
            if grant.kind == "revoking" or spent_for > grant.reuse_seconds:
                if grant.kind == "revoking":
                    self.violations.append(f"a spent refresh token was reused ({spent_for:.1f} s)")
                grant.revoked = True
                return _invalid_grant()
            grant.reuses += 1
        grant.spent[grant.refresh] = time.time()
        answer = self._issue(grant)
        armed = self._on_answer.pop(id(grant), None)
        if armed is not None:
            action, done = armed
            action()
            done.set()
        return web.json_response(answer)

    def _issue(self, grant: Grant) -> dict[str, object]:
        access, refresh = "at-" + secrets.token_urlsafe(12), "rt-" + secrets.token_urlsafe(12)
        grant.access.append(access)
        grant.refresh = refresh
        self._by_refresh[refresh] = grant
        self._issued_at[access] = time.time()
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL,
        }


def _invalid_grant() -> web.Response:
    return web.json_response({"error": "invalid_grant"}, status=400)
