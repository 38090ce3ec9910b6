"""Five-field cron expressions (minute hour day-of-month month day-of-week), checked, not run.

Stream schedules are executed by the platform, not the broker; the broker only refuses a
manifest whose schedule the platform could not run.
"""

from __future__ import annotations

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

# (name, lowest, highest, names usable instead of numbers)
_FIELDS: list[tuple[str, int, int, list[str]]] = [
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
]


def cron_problem(expr: str) -> str | None:
    """None if `expr` is a valid five-field cron expression, else what is wrong with it."""
    parts = expr.split()
    if len(parts) != 5:
        return f"a cron schedule has 5 fields, this one has {len(parts)}"
    for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        for item in part.split(","):
            problem = _item_problem(item, low, high, names)
            if problem:
                return f"bad {name} field {part!r}: {problem}"
    return None


def _item_problem(item: str, low: int, high: int, names: list[str]) -> str | None:
    body, _, step = item.partition("/")
    if _ == "/" and not (step.isdigit() and int(step) > 0):
        return f"step {step!r} is not a positive number"
    if body == "*":
        return None
    start, dash, end = body.partition("-")
    bounds = [start, end] if dash else [start]
    values: list[int] = []
    for bound in bounds:
        value = _value(bound, low, names)
        if value is None:
            return f"{bound!r} is not a number"
        if not low <= value <= high:
            return f"{value} is outside {low}-{high}"
        values.append(value)
    if len(values) == 2 and values[0] > values[1]:
        return f"range {body!r} runs backwards"
    return None


def _value(text: str, low: int, names: list[str]) -> int | None:
    if text.isdigit():
        return int(text)
    if text.lower() in names:
        return names.index(text.lower()) + low
    return None
