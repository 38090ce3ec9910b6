"""The audited outcome of one operation: "ok", or the code of the error that ended it,
recorded in the audit log however the operation ends (`with Audited(...):`).

A plain context manager with slots, not an async one: it wraps the runtime reads, the hot
path, where it costs one small object and no await (the blocks it replaced were a
try/except/finally each, written out four times).
"""

from __future__ import annotations

from collections.abc import Callable

from broker.services.audit import AuditLog


class Audited:
    """`with Audited(ctx.audit, actor, action, tenant_id, ...):` records the block's outcome
    when it ends: "ok", or the `code` of the error it raised ("error" for one without).
    Exceptions that are not `errors` count as "ok" (the runtime reads audit `BrokerError`s
    only). `untrusted_if`: the outcome under which `name` is the caller's choice (see
    `AuditLog.record`); `then` sees the outcome first (a metric). Never suppresses."""

    __slots__ = (
        "_action",
        "_actor",
        "_connection_id",
        "_errors",
        "_log",
        "_name",
        "_tenant_id",
        "_then",
        "_untrusted_if",
    )

    def __init__(
        self,
        log: AuditLog,
        actor: str,
        action: str,
        tenant_id: str,
        connection_id: str | None = None,
        name: str | None = None,
        *,
        errors: type[BaseException] = Exception,
        untrusted_if: str | None = None,
        then: Callable[[str], None] | None = None,
    ) -> None:
        self._log = log
        self._actor = actor
        self._action = action
        self._tenant_id = tenant_id
        self._connection_id = connection_id
        self._name = name
        self._errors = errors
        self._untrusted_if = untrusted_if
        self._then = then

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        outcome = "ok"
        if exc is not None and isinstance(exc, self._errors):
            outcome = getattr(exc, "code", "error")
        if self._then is not None:
            self._then(outcome)
        self._log.record(
            actor=self._actor,
            action=self._action,
            tenant_id=self._tenant_id,
            connection_id=self._connection_id,
            name=self._name,
            outcome=outcome,
            untrusted_name=outcome == self._untrusted_if,
        )
