"""The audited outcome of one operation: "ok", or the code of the error that ended it,
recorded in the audit log however the operation ends (`with audited(...):`).

It wraps the runtime reads, the hot path, so it is built for cost: a plain context manager
(no await), made by a function rather than a class call (no keyword dict, no `__init__`
frame), with slots. What it still costs a read is in docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.services.audit import AuditLog


class Audited:
    """The context manager `audited` returns. Never suppresses the exception."""

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

    _action: str
    _actor: str
    _connection_id: str | None
    _errors: type[BaseException]
    _log: AuditLog
    _name: str | None
    _tenant_id: str
    _then: Callable[[str], None] | None
    _untrusted_if: str | None

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


_new = object.__new__


def audited(
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
) -> Audited:
    """`with audited(ctx.audit, actor, action, tenant_id, ...):` records the block's outcome
    when it ends: "ok", or the `code` of the error it raised ("error" for one without).
    Exceptions that are not `errors` count as "ok" (the runtime reads audit `BrokerError`s
    only). `untrusted_if`: the outcome under which `name` is the caller's choice (see
    `AuditLog.record`); `then` sees the outcome first (a metric)."""
    block: Audited = _new(Audited)
    block._log = log
    block._actor = actor
    block._action = action
    block._tenant_id = tenant_id
    block._connection_id = connection_id
    block._name = name
    block._errors = errors
    block._untrusted_if = untrusted_if
    block._then = then
    return block
