"""Test-only crash points: where `BROKER_TEST_CRASH_AT` makes the process SIGKILL itself in
the middle of a refresh, exactly as an OOM kill or a lost node would end it. The kill-point
tests (tests/e2e/test_refresh_crashes.py) stop a real broker between two store writes this
way: no signal sent from outside lands reliably between them.

The setting is refused outside dev mode (`Settings`), so a stray environment variable cannot
arm it in production; unset, each point costs one attribute read.
"""

from __future__ import annotations

import logging
import os
import signal

from broker.config import CRASH_POINTS
from broker.services.context import Context

log = logging.getLogger("broker.refresh")


def reached(ctx: Context, point: str, connector: str) -> None:
    """Kill this process if `BROKER_TEST_CRASH_AT` names `point` (and this connector, when it
    names one)."""
    wanted = ctx.settings.test_crash_at
    if wanted is None:
        return
    assert point in CRASH_POINTS, point
    at, _, only = wanted.partition(":")
    if at == point and only in ("", connector):
        log.warning("BROKER_TEST_CRASH_AT: this process kills itself at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)
