"""What the Connect pages load besides their HTML: one stylesheet, one small script and the
deployment's logo, all served by the broker itself (the pages' CSP allows nothing else).

The files are read once when the app is built. Their URLs carry a digest of every byte
served (the brand's colour and logo included), so a browser may keep them forever
(`immutable`) and a new release or a new brand is a new URL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from broker.config import LOGO_TYPES, Settings
from broker.errors import ConfigError

MAX_LOGO_BYTES = 256 * 1024
CSS, JS, LOGO = "connect.css", "connect.js", "logo"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Assets:
    """The served files by name, their version, and the brand the pages show."""

    files: dict[str, Asset]
    version: str
    base_path: str
    """`<PUBLIC_URL path>/static/<version>`: what the browser asks for."""
    brand_name: str

    def url(self, name: str) -> str:
        return f"{self.base_path}/{name}"

    @property
    def has_logo(self) -> bool:
        return LOGO in self.files


def load_assets(settings: Settings) -> Assets:
    static = resources.files("broker.web") / "static"
    css = _accent_rules(settings.brand_accent) + (static / CSS).read_bytes()
    files = {
        CSS: Asset(css, "text/css; charset=utf-8"),
        JS: Asset((static / JS).read_bytes(), "text/javascript; charset=utf-8"),
    }
    logo = settings.brand_logo_file
    if logo is not None:
        try:
            body = logo.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"BROKER_BRAND_LOGO_FILE: cannot read {logo} ({exc.strerror})"
            ) from None
        if len(body) > MAX_LOGO_BYTES:
            raise ConfigError(f"BROKER_BRAND_LOGO_FILE: larger than {MAX_LOGO_BYTES} bytes")
        files[LOGO] = Asset(body, LOGO_TYPES[logo.suffix.lower()])
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].body + b"\0")
    version = digest.hexdigest()[:16]
    prefix = urlsplit(settings.public_url).path.rstrip("/")
    return Assets(files, version, f"{prefix}/static/{version}", settings.brand_name)


def _accent_rules(accent: str) -> bytes:
    """The brand colour, and the text colour that reads on it (WCAG relative luminance: dark
    text on a light accent), so any `#rrggbb` keeps its buttons legible."""
    channels = [int(accent[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    # the luminance at which black and white text contrast equally with the background
    on_accent = "#111111" if luminance > 0.179 else "#ffffff"
    return f":root{{--accent:{accent.lower()};--on-accent:{on_accent}}}\n".encode()
