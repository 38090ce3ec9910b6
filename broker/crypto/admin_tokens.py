"""Admin tokens: several valid at once, so one can be replaced without downtime.

Tokens come from `BROKER_ADMIN_TOKEN` (a comma-separated list) and/or a file of SHA-256
hashes (`BROKER_ADMIN_TOKEN_FILE`, one `sha256:<hex>` per line, `#` comments), which a
serving broker re-reads when it changes: add the new token's hash, roll clients over, remove
the old one. The file never holds a usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from broker.errors import ConfigError

_LINE = re.compile(r"sha256:([0-9a-f]{64})")


def hash_line(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def load_hashes(path: Path) -> list[bytes]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read admin token file {path}: {type(exc).__name__}") from None
    hashes = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ConfigError(f"{path} line {number}: expected sha256:<64 hex digits>")
        hashes.append(bytes.fromhex(match.group(1)))
    return hashes


class AdminTokens:
    def __init__(self, tokens: Iterable[str], path: Path | None) -> None:
        self._plain = [hashlib.sha256(t.encode()).digest() for t in tokens]
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._hashed: list[bytes] = []
        self.last_error: str | None = None
        if path is not None:
            self._hashed = load_hashes(path)
            self._stamp = self._stat()

    def check(self, presented: str) -> bool:
        """Constant time in the token; compares against every valid hash."""
        self._refresh()
        digest = hashlib.sha256(presented.encode()).digest()
        matches = [hmac.compare_digest(digest, h) for h in (*self._plain, *self._hashed)]
        return any(matches)

    def _refresh(self) -> None:
        if self._path is None:
            return
        stamp = self._stat()
        if stamp == self._stamp:
            return
        try:
            self._hashed, self.last_error = load_hashes(self._path), None
        except ConfigError as exc:
            self.last_error = str(exc)  # keep the tokens we had rather than lock everyone out
        self._stamp = stamp

    def _stat(self) -> tuple[int, int, int] | None:
        assert self._path is not None
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)
