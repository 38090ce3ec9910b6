"""The real OAuth server for end-to-end tests: npm `oidc-provider` run by `oidc_server.mjs`.

`OidcPeer` starts and stops the Node process; `oidc_peer_fixture` makes a pytest fixture of it;
`drive_browser` plays the browser through the provider's development login and consent forms.
The peer never skips: a missing `node` or `tests/peers/node_modules` is a loud failure (run
`./dev setup`, or `npm ci` in tests/peers).

The aiohttp session given to `drive_browser` must keep cookies for 127.0.0.1, which the default
jar refuses: create it with `aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))`.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

import aiohttp
import pytest

PEER_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = PEER_DIR / "oidc_server.mjs"
STARTUP_TIMEOUT = 30.0
DEV_PASSWORD = "any-password"  # devInteractions accept any login and password

FixtureScope = Literal["session", "package", "module", "class", "function"]


class OidcPeerError(RuntimeError):
    """The OAuth peer could not start, or answered something unexpected."""


class _NotReady(OidcPeerError):
    """The node process ran but never said READY."""


class OidcPeer:
    """One `oidc-provider` process on 127.0.0.1 (a free port unless the config names one).

    Config keys: see the header of oidc_server.mjs (clients, pkceRequired, rotateRefreshToken,
    accessTokenTTL, clientCredentialsTTL, refreshTokenTTL, scopes, resource, port, issuer).
    """

    def __init__(self, *, startup_timeout: float = STARTUP_TIMEOUT) -> None:
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._issuer: str | None = None
        self._discovery: dict[str, Any] = {}

    # lifecycle

    def start(self, config: Mapping[str, Any]) -> None:
        if self._process is not None:
            raise OidcPeerError("the OIDC peer is already running; stop() it first")
        try:
            self._start(config)
        except _NotReady:
            # Seen once in a full run on a loaded machine: node printed its start-up warning,
            # then no READY line for 30 s. A fresh process gets one more chance; a second
            # silent start fails the tests as before.
            self._start(config)

    def _start(self, config: Mapping[str, Any]) -> None:
        node = shutil.which("node")
        if node is None:
            raise OidcPeerError(
                "`node` is not on PATH: the end-to-end OAuth tests need Node.js 20+ "
                "(install it, then run ./dev setup)"
            )
        if not (PEER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
            raise OidcPeerError(
                f"{PEER_DIR / 'node_modules'} has no oidc-provider: run ./dev setup "
                f"(or `npm ci` in {PEER_DIR})"
            )
        self._workdir = Path(tempfile.mkdtemp(prefix="oidc-peer-"))
        config_path = self._workdir / "config.json"
        config_path.write_text(json.dumps(dict(config)), encoding="utf-8")
        log_path = self._workdir / "output.log"
        with log_path.open("wb") as log:
            # stdin stays a pipe: the server exits when it closes, so a killed pytest leaves
            # no orphan node process behind.
            self._process = subprocess.Popen(
                [node, str(SERVER_SCRIPT), str(config_path)],
                cwd=PEER_DIR,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_node_env(),
            )
        atexit.register(self.stop)
        try:
            self._issuer = self._wait_ready(log_path)
            self._discovery = self._get_json("/.well-known/openid-configuration")
        except Exception as exc:
            output = self.output()
            self.stop()
            error = _NotReady if isinstance(exc, _NotReady) else OidcPeerError
            raise error(f"the OIDC peer did not start ({exc}); its output:\n{output}") from exc

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._issuer = None
        self._discovery = {}
        atexit.unregister(self.stop)

    def __enter__(self) -> OidcPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output(self) -> str:
        """Everything the Node process printed so far (warnings, errors, the READY line)."""
        if self._workdir is None:
            return ""
        log_path = self._workdir / "output.log"
        return log_path.read_text(errors="replace") if log_path.exists() else ""

    # metadata

    @property
    def issuer(self) -> str:
        if self._issuer is None:
            raise OidcPeerError("the OIDC peer is not running")
        return self._issuer

    @property
    def discovery(self) -> dict[str, Any]:
        """The provider's /.well-known/openid-configuration document."""
        if not self._discovery:
            raise OidcPeerError("the OIDC peer is not running")
        return self._discovery

    @property
    def authorization_endpoint(self) -> str:
        return str(self.discovery["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.discovery["token_endpoint"])

    @property
    def revocation_endpoint(self) -> str:
        return str(self.discovery["revocation_endpoint"])

    @property
    def jwks_uri(self) -> str:
        return str(self.discovery["jwks_uri"])

    # test controls

    def stats(self) -> dict[str, Any]:
        """Requests seen since the last reset: `{"token": {grant_type: n}, "token_errors":
        {grant_type: n}, "authorization": n, "revocation": n}`."""
        return self._get_json("/__test/stats")

    def token_requests(self, grant_type: str) -> int:
        """How many token-endpoint requests with this grant_type reached the provider."""
        return int(self.stats()["token"].get(grant_type, 0))

    def reset_stats(self) -> None:
        request = urllib.request.Request(self.issuer + "/__test/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 204:
                raise OidcPeerError(f"POST /__test/reset answered {response.status}")

    # internals

    def _wait_ready(self, log_path: Path) -> str:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for line in log_path.read_text(errors="replace").splitlines():
                if line.startswith("READY "):
                    return line.removeprefix("READY ").strip()
            code = self._process.poll()
            if code is not None:
                raise OidcPeerError(f"node exited with status {code}")
            time.sleep(0.02)
        raise _NotReady(f"no READY line within {self.startup_timeout} s")

    def _get_json(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.issuer + path, timeout=10) as response:
            data: dict[str, Any] = json.load(response)
        return data


def _node_env() -> dict[str, str]:
    return {**os.environ, "OIDC_PEER_EXIT_ON_STDIN_EOF": "1"}


def oidc_peer_fixture(
    config: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    *,
    scope: FixtureScope = "module",
    name: str | None = None,
) -> Any:
    """A pytest fixture yielding a started `OidcPeer`, stopped at the end of `scope`.

        oidc = oidc_peer_fixture({"clients": [...], "rotateRefreshToken": True})

    `config` may be a callable, evaluated when the fixture is first used.
    """

    def _peer() -> Iterator[OidcPeer]:
        peer = OidcPeer()
        peer.start(config() if callable(config) else config)
        try:
            yield peer
        finally:
            peer.stop()

    if name is not None:
        return pytest.fixture(scope=scope, name=name)(_peer)
    return pytest.fixture(scope=scope)(_peer)


# the browser


class _Form:
    def __init__(self, action: str, method: str, ident: str = "") -> None:
        self.action = action
        self.method = method
        self.ident = ident
        self.fields: dict[str, str] = {}


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._current = _Form(
                values.get("action", ""), values.get("method", "get").lower(), values.get("id", "")
            )
            self.forms.append(self._current)
        elif (
            tag in ("input", "button")
            and self._current is not None
            and "name" in values
            and values.get("type", "text").lower() not in ("submit", "button", "image", "reset")
        ):
            self._current.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


class BrowserError(AssertionError):
    """The scripted browser met a page or status it does not know how to go past."""


_REDIRECTS = {301, 302, 303, 307, 308}


async def drive_browser(
    session: aiohttp.ClientSession,
    url: str,
    *,
    stop_when: Callable[[str], bool],
    login: str = "alice",
    password: str = DEV_PASSWORD,
    max_steps: int = 20,
) -> str:
    """Follow `url` like a browser until a redirect's Location satisfies `stop_when`.

    Redirects are followed by hand; the broker's interstitial is continued, the oidc-provider
    devInteractions login form is posted with `login` (the account id, i.e. `sub`) and
    `password` (anything goes), the consent form is confirmed. Returns the absolute Location
    that matched. `session` must be created with `cookie_jar=aiohttp.CookieJar(unsafe=True)`
    (the interaction cookies are set by 127.0.0.1).
    """
    method, current, data = "GET", url, None
    for _ in range(max_steps):
        async with session.request(method, current, data=data, allow_redirects=False) as resp:
            body = await resp.text()
            here = str(resp.url)
            if _cookies_dropped(session, resp):
                raise BrowserError(
                    f"{here} set cookies the session dropped: create the session with "
                    "cookie_jar=aiohttp.CookieJar(unsafe=True)"
                )
            if resp.status in _REDIRECTS:
                location = urljoin(here, resp.headers["Location"])
                if stop_when(location):
                    return location
                if resp.status in (301, 302, 303):
                    method, data = "GET", None
                current = location
                continue
            if resp.status != 200:
                raise BrowserError(f"{method} {here} answered {resp.status}: {body[:2000]}")
        form = _interaction_form(body)
        if form is None:
            raise BrowserError(
                f"{here} is neither a redirect nor a login/consent page: {body[:2000]}"
            )
        if form.fields.get("prompt") == "login":
            form.fields["login"] = login
            form.fields["password"] = password
        method, current, data = "POST", urljoin(here, form.action), dict(form.fields)
    raise BrowserError(f"no redirect matched stop_when within {max_steps} steps (last: {current})")


def _cookies_dropped(session: aiohttp.ClientSession, resp: aiohttp.ClientResponse) -> bool:
    """True when the response set cookies (not deletions) and none of them reached the jar."""
    wanted = {name for name, morsel in resp.cookies.items() if morsel.value}
    kept = {morsel.key for morsel in session.cookie_jar}
    return bool(wanted) and not wanted & kept


def _interaction_form(html: str) -> _Form | None:
    parser = _FormParser()
    parser.feed(html)
    for form in parser.forms:
        if form.method == "post" and form.fields.get("prompt") in ("login", "consent"):
            return form
        if form.method == "post" and form.ident == "continue":  # the broker's interstitial
            return form
    return None
