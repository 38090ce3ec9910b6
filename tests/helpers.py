"""Constants and small helpers the tests import (conftest.py is not importable as a module)."""

from __future__ import annotations

import secrets

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)


def admin(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
