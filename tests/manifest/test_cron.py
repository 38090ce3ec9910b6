from __future__ import annotations

import pytest

from broker.manifest.cron import cron_problem


@pytest.mark.parametrize(
    "expr",
    ["*/15 * * * *", "0 0 * * *", "0,30 9-17 * * mon-fri", "5 4 1 jan,jul sun", "0 */2 1-31/2 * 7"],
)
def test_valid(expr: str) -> None:
    assert cron_problem(expr) is None


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("* * * *", "5 fields"),
        ("0 * * * * *", "5 fields"),
        ("60 * * * *", "outside 0-59"),
        ("* 24 * * *", "outside 0-23"),
        ("* * 0 * *", "outside 1-31"),
        ("* * * 13 *", "outside 1-12"),
        ("*/0 * * * *", "step"),
        ("*/x * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("@hourly", "5 fields"),
        ("a * * * *", "not a number"),
    ],
)
def test_invalid(expr: str, fragment: str) -> None:
    problem = cron_problem(expr)
    assert problem is not None and fragment in problem
