"""What one schemathesis engine run did, read from its events: the cases sent per operation,
phase and generation mode, every failed check with the request that reproduces it, and every
error that kept a phase from running."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemathesis.engine import Status, events
from schemathesis.engine.recorder import ScenarioRecorder


@dataclass
class FuzzRun:
    sent: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """Cases that got an answer, by (operation, phase, positive|negative)."""
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)
    """Every operation fuzzed."""
    documented: int = 0
    """How many operations the served document has."""

    @classmethod
    def of(cls, stream: Iterable[events.EngineEvent]) -> FuzzRun:
        run = cls()
        for event in stream:
            if isinstance(event, events.ScenarioFinished):
                run._scenario(event.phase.value, event.recorder)
            elif isinstance(event, events.NonFatalError):
                run.errors.append(f"{event.label} ({event.phase}): {event.info.format()}")
            elif isinstance(event, events.FatalError):
                run.errors.append(f"fatal: {event.exception!r}")
            elif isinstance(event, events.EngineFinished):
                run.failures += [f"after the run: {f.title}: {f.message}" for f in event.failures]
        return run

    def _scenario(self, phase: str, recorder: ScenarioRecorder) -> None:
        for case_id, interaction in recorder.interactions.items():
            node = recorder.cases.get(case_id)
            if interaction.response is None or node is None or node.value.meta is None:
                continue
            mode = node.value.meta.generation.mode.value
            self.sent[(recorder.label, phase, mode)] += 1
        for checks in recorder.checks.values():
            for check in checks:
                info = check.failure_info
                if check.status == Status.FAILURE and info is not None:
                    self.failures.append(
                        f"{recorder.label} [{phase}] {check.name}: {info.failure.title}\n"
                        f"  {info.failure.message}\n  {info.code_sample}"
                    )
                elif check.status == Status.ERROR:
                    self.errors.append(f"{recorder.label} [{phase}] {check.name} crashed")

    def modes_of(self, operation: str) -> set[str]:
        return {mode for (label, _, mode) in self.sent if label == operation}

    def total(self) -> int:
        return sum(self.sent.values())
