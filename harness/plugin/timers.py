"""Shutdown and startup times measured against the platform's budget, with the margin stated."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from harness.plugin.state import DEFAULT_MARGIN_S, PluginState


@dataclass(frozen=True)
class ShutdownMeasurement:
    seconds: float
    budget: float
    signal: str

    @property
    def margin(self) -> float:
        return self.budget - self.seconds


class ShutdownTimer:
    def __init__(self, state: PluginState) -> None:
        self.state = state

    @property
    def budget(self) -> float:
        return self.state.budget

    def measure(
        self, proc: subprocess.Popen[Any], signum: int = signal.SIGTERM, timeout: float = 120
    ) -> ShutdownMeasurement:
        """Signal the process and block until it exits (no busy wait); record the time."""
        started = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=timeout)
        seconds = time.monotonic() - started
        self.state.record("shutdown", seconds, self.budget)
        return ShutdownMeasurement(seconds, self.budget, signal.Signals(signum).name)

    def assert_within_budget(self, measured: ShutdownMeasurement, margin: float = DEFAULT_MARGIN_S) -> None:
        """Fail only past budget + margin, and say by how much."""
        limit = measured.budget + margin
        if measured.seconds > limit:
            pytest.fail(
                f"shutdown after {measured.signal} took {measured.seconds:.3f}s: "
                f"{measured.seconds - limit:.3f}s over the {self.state.platform} budget of "
                f"{measured.budget:.2f}s plus a margin of {margin:.2f}s",
                pytrace=False,
            )


class StartupTimer:
    def __init__(self, state: PluginState) -> None:
        self.state = state

    def measure(self, start: Callable[[], Any], kind: str = "cold") -> tuple[Any, float]:
        """Run `start` (an engine start, with or without a compile cache); its result and seconds."""
        started = time.monotonic()
        result = start()
        seconds = time.monotonic() - started
        self.state.record(f"startup-{kind}", seconds)
        return result, seconds
