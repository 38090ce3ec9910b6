"""Which URLs a connector's provider calls may reach: `permissions.http` patterns, strict
target parsing and the decision (pure: no I/O; the address rules that need DNS are the
egress proxy's, `broker.services.proxy`).

A unit of its own, beside `manifest` rather than in it, because two sides must decide the
same way: the broker's proxy and manifest checks, and the runtime SDK's test runtime, which
runs in connector processes and may import nothing of the server (`manifest` brings pydantic
and the models). It imports only `broker.errors`, the standard library and `idna`.
"""

from __future__ import annotations

from broker.http_rules.permissions import (
    Allowed,
    Target,
    check,
    parse_pattern,
    parse_target,
    pattern_problem,
)

__all__ = ["Allowed", "Target", "check", "parse_pattern", "parse_target", "pattern_problem"]
