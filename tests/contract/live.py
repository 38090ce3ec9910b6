"""A live broker for the contract fuzzer: a real `broker serve` process on the embedded SQLite
store, the real npm OAuth server for its token endpoint, a stand-in for the platform runtime's
testConnection route, and the records the fuzzer aims at (connections whose stored settings
are canaries, OAuth apps, connect links, a runtime token), all made through the HTTP API as a
platform would make them."""

from __future__ import annotations

import json
import secrets
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from broker.crypto import Keyring, save_keyring
from tests.e2e.harness import (
    client_credentials_manifest,
    free_port,
    peer_client,
    write_connectors,
)
from tests.e2e.processes import BrokerProcess
from tests.helpers import ADMIN_TOKEN, admin
from tests.peers.oidc import OidcPeer

RETURN_ORIGIN = "https://dashboard.example.com"
TENANT = "tenant-fuzz"
MACHINE = "fuzz-machine"
"""A client-credentials connector with a secret setting: the runtime token's connection, so
both the secret reads and the OAuth token routes do their real work."""
GITHUB_APP = "github_app"
"""The bundled GitHub connector's credential key: the OAuth app a connect link redirects with."""

API_KEY = "sk_test_CANARY_fuzz_" + secrets.token_hex(8)
WEBHOOK_SECRET = "whsec_CANARY_fuzz_" + secrets.token_hex(8)
CLIENT_SECRET = "cs_CANARY_fuzz_" + secrets.token_hex(8)
SECRET_CANARIES = (API_KEY, WEBHOOK_SECRET, CLIENT_SECRET, ADMIN_TOKEN)
"""Values no response holds (but a granted runtime read, which answers its secret) and no log
line holds."""


class _AcceptingRuntime(BaseHTTPRequestHandler):
    """The platform runtime's testConnection route, passing every check (the platform is not
    part of this project; a settings change still makes its call)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the broker's log is the one under test


@contextmanager
def accepting_runtime() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AcceptingRuntime)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def machine_manifest(peer: OidcPeer) -> dict[str, Any]:
    manifest = client_credentials_manifest(MACHINE, peer)
    manifest["permissions"]["secrets"] = {"api_key": ["read"]}
    manifest["connection"]["settingsSchema"] = {
        "type": "object",
        "properties": {"api_key": {"type": "string", "minLength": 1, "x-secret": True}},
    }
    return manifest


@dataclass(frozen=True)
class Seeded:
    """What the fuzzer's generated requests are steered towards, besides random values."""

    url: str
    log: Path
    stripe_connection: str
    """An API-key connection whose settings are canaries (and whose webhooks verify)."""
    machine_connection: str
    """The OAuth connection the runtime token reads, with a canary secret setting."""
    doomed_connection: str
    """The connection deleteConnection is steered to: the others must stay for the rest."""
    runtime_token: str
    form_token: str
    """A connect link to the Stripe settings form."""
    oauth_token: str
    """A connect link that redirects to GitHub."""
    access_token: str

    @property
    def credentials(self) -> tuple[str, ...]:
        """Bearer values no log line holds (the API hands each out once, by design)."""
        return (self.runtime_token, self.form_token, self.oauth_token, self.access_token)


def call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={**admin(), "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def seed(url: str, log: Path) -> Seeded:
    def connection(connector: str, settings: dict[str, str]) -> str:
        body = {"tenant_id": TENANT, "connector": connector, "settings": settings}
        return str(call(url, "POST", "/v1/connections", body)["id"])

    def link(connector: str) -> str:
        body = {"tenant_id": TENANT, "connector": connector, "return_url": RETURN_ORIGIN + "/done"}
        return str(call(url, "POST", "/v1/connect-sessions", body)["token"])

    stripe = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    for key in (GITHUB_APP, MACHINE.replace("-", "_")):
        app = {"client_id": key, "client_secret": CLIENT_SECRET}
        call(url, "PUT", f"/v1/oauth-apps/{key}", app)
    machine = connection(MACHINE, {"api_key": API_KEY})
    minted = call(url, "POST", "/v1/runtime-tokens", {"connection_id": machine})
    runtime_token = str(minted["token"])
    access = urllib.request.Request(
        url + "/v1/runtime/oauth/access-token",
        headers={"Authorization": f"Bearer {runtime_token}"},
    )
    with urllib.request.urlopen(access, timeout=10) as resp:
        access_token = str(json.load(resp)["access_token"])
    return Seeded(
        url=url,
        log=log,
        stripe_connection=connection("stripe", stripe),
        machine_connection=machine,
        doomed_connection=connection("stripe", stripe),
        runtime_token=runtime_token,
        form_token=link("stripe"),
        oauth_token=link("github"),
        access_token=access_token,
    )


@contextmanager
def live_broker(folder: Path) -> Iterator[Seeded]:
    """The broker serving, seeded; on exit it has stopped, so its log is complete."""
    keyring = folder / "keyring.json"
    save_keyring(keyring, Keyring.generate("k1"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = peer_client(
        MACHINE.replace("-", "_"), "client_secret_basic", url, MACHINE, client_secret=CLIENT_SECRET
    )
    with OidcPeer() as peer, accepting_runtime() as runtime_url:
        peer.start({"clients": [client], "accessTokenTTL": 3600})
        connectors = write_connectors(folder / "connectors", [machine_manifest(peer)])
        env = {
            "BROKER_STORE": f"sqlite:///{folder / 'broker.db'}",
            "BROKER_KEYRING_FILE": str(keyring),
            "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
            "BROKER_PUBLIC_URL": url,
            "BROKER_ALLOWED_RETURN_ORIGINS": RETURN_ORIGIN,
            "BROKER_RUNTIME_URL": runtime_url,
            "BROKER_CONNECTORS_DIRS": str(connectors),
        }
        broker = BrokerProcess(port, env, folder / "broker.log")
        broker.start()
        try:
            yield seed(url, broker.log)
        finally:
            broker.stop()
