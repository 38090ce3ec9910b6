"""What the Connect pages' tests share: a connector whose settings use every form feature,
a fake runtime for testConnection, and a small reader of the pages' HTML."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from aiohttp import web

WIDGET_KEY = "Widget_KEY_CANARY_5f2c1e"


def widget_manifest() -> dict[str, Any]:
    """An API-key connector with a label, help, placeholder, length limits, a pattern (with a
    `-` that the `v` flag refuses unescaped), an enum and an optional number."""
    return {
        "key": "widget",
        "name": "Widget Cloud",
        "provider": "widget",
        "kind": "source",
        "version": "1.0.0",
        "permissions": {
            "http": ["https://api.widget.example/*"],
            "secrets": {"api_key": ["read"], "webhook_secret": ["read"]},
        },
        "connection": {
            "testConnection": {"route": "/setup/test_connection", "method": "POST"},
            "setup": {
                "webhookUrlTemplate": "/hooks/<tenant_id>/widget?connection_id=<connection_id>",
                "instructions": "Create a widget webhook pointing at the URL below.",
            },
            "settingsSchema": {
                "type": "object",
                "required": ["api_key", "account", "region"],
                "properties": {
                    "api_key": {
                        "type": "string",
                        "title": "API key",
                        "description": "Settings, then API keys, in the widget console.",
                        "minLength": 8,
                        "x-secret": True,
                        "x-placeholder": "wk_...",
                    },
                    "account": {
                        "type": "string",
                        "title": "Account name",
                        "pattern": "^[a-z0-9][a-z0-9-]*$",
                        "maxLength": 20,
                        "x-placeholder": "my-team",
                    },
                    "region": {
                        "type": "string",
                        "title": "Region",
                        "enum": ["eu", "us"],
                    },
                    "page_size": {"type": "integer", "title": "Page size", "minimum": 1},
                    "webhook_secret": {
                        "type": "string",
                        "title": "Webhook signing secret",
                        "x-secret": True,
                    },
                },
            },
        },
    }


def write_widget(folder: Path) -> Path:
    (folder / "widget").mkdir(parents=True, exist_ok=True)
    (folder / "widget" / "manifest.json").write_text(json.dumps(widget_manifest()))
    return folder


class FakeRuntime:
    """The platform runtime's testConnection route: accepts keys that start with `good`,
    refuses the rest with a message of its own."""

    MESSAGE = "The widget API refused this key"

    def __init__(self) -> None:
        self.calls = 0
        self.app = web.Application()
        self.app.router.add_post(
            "/api/v1/extensions/{tenant}/{connector}/routes/setup/test_connection", self.handle
        )

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        if str(body.get("api_key", "")).startswith(("good", "sk_test_good")):
            return web.json_response({"ok": True})
        return web.json_response({"message": self.MESSAGE}, status=400)


class Page(HTMLParser):
    """The elements of a page: attributes by id, text by id, every tag's attributes."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.by_id: dict[str, dict[str, str]] = {}
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        values["<tag>"] = tag
        self.tags.append((tag, values))
        if "id" in values:
            self.by_id[values["id"]] = values
            self.texts.setdefault(values["id"], "")
        if tag not in ("input", "meta", "link", "img", "br"):
            self._open.append((tag, values.get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident is not None:
                self.texts[ident] += data

    def text(self, ident: str) -> str:
        return " ".join(self.texts[ident].split())

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]
