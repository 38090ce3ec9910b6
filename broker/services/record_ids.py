"""The ids the broker makes and checks: connection ids, tenant ids, time-sortable keys."""

from __future__ import annotations

import re
import secrets
from typing import Any

from broker.errors import InvalidRequest

TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
CONNECTION_ID = re.compile(r"conn_[a-z0-9]{20,40}")


def time_key(ts: float) -> str:
    """Unix milliseconds as 13 digits: ids that start with it sort by time, and the key of
    a moment sorts below every id made after it (retention floors)."""
    return f"{int(ts * 1000):013d}"


def new_connection_id() -> str:
    # lower-case hex: safe in URLs, Redis hash tags and file names
    return "conn_" + secrets.token_hex(13)


def check_tenant_id(value: Any) -> str:
    if not isinstance(value, str) or not TENANT_ID.fullmatch(value):
        raise InvalidRequest(
            "tenant_id must be 1-128 characters: letters, digits, '.', '_', ':', '-'"
        )
    return value


def is_connection_id(value: str) -> bool:
    return CONNECTION_ID.fullmatch(value) is not None
