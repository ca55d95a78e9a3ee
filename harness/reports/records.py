"""The report's sub-records, typed: the stop against its budget, each test's timing record and
outcome, and the tests a stop caught still running.

The run writes them (harness.run.finish) and the table, the HTML page and the
pictures read them (harness.reports.summary, page, timeline); report.json keeps the keys it has
always had. Reading back is lenient about what a workload or an older gpuci left out, never about
kinds: a value of the wrong kind reads as absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NUMBER = (int, float)


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, NUMBER) and not isinstance(value, bool) else None


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _dropped_nones(data: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None or k in keep}


@dataclass(frozen=True)
class Budget:
    """The run's stop against its platform's budget: seconds allowed, taken, and the margin left."""

    seconds: float | None = None
    stop_seconds: float | None = None
    margin_seconds: float | None = None
    within: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "stop_seconds": self.stop_seconds,
            "margin_seconds": self.margin_seconds,
            "within": self.within,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Budget:
        within = data.get("within")
        return cls(
            _number(data, "seconds"),
            _number(data, "stop_seconds"),
            _number(data, "margin_seconds"),
            within if isinstance(within, bool) else None,
        )


@dataclass(frozen=True)
class TestRecord:
    """One timing the plugin recorded for a test: its teardown, a VRAM wait, a startup."""

    __test__ = False  # a record, not a pytest test class

    test: str
    phase: str
    seconds: float = 0.0
    budget: float | None = None
    # What else the plugin said (gpus, holders, a newer gpuci's keys): kept as it was.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "phase": self.phase, "seconds": self.seconds, "budget": self.budget, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestRecord:
        known = ("test", "phase", "seconds", "budget")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(
            str(data.get("test")),
            str(data.get("phase")),
            _number(data, "seconds") or 0.0,
            _number(data, "budget"),
            extra,
        )


@dataclass(frozen=True)
class TestResult:
    """One test's outcome: passed, failed, error, skipped, xfailed, xpassed or timeout; a failure's
    message and stack (pytest's report of it)."""

    __test__ = False  # a record, not a pytest test class

    test: str
    outcome: str
    seconds: float | None = None
    message: str | None = None
    stack: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _dropped_nones(
            {"test": self.test, "outcome": self.outcome, "seconds": self.seconds, "message": self.message,
             "stack": self.stack},
            keep=("seconds",),
        )  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestResult:
        return cls(
            str(data.get("test")),
            str(data.get("outcome")),
            _number(data, "seconds"),
            _text(data, "message"),
            _text(data, "stack"),
        )


@dataclass(frozen=True)
class Hang:
    """The tests still running when the step was stopped, and the stacks the plugin dumped."""

    running: tuple[str, ...] = ()
    stacks: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"running": list(self.running), "stacks": self.stacks}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hang:
        running = data.get("running")
        return cls(tuple(str(t) for t in running) if isinstance(running, list) else (), _text(data, "stacks"))
