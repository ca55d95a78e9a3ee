"""What supervision is about and what it found: the workload's interface and the result (the GPUs watched,
`VramWatch`, are the GPUs stage's: harness.gpu.vram.release).

The supervisor (harness.run.supervise.supervisor) fills a `Supervised`; the run's stop (harness.run.supervise.stop)
judges it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from harness.gpu.vram.release import HolderInfo, ReleaseResult


class Workload(Protocol):
    def start(self) -> None: ...

    def wait(self) -> int:
        """Block until the workload exits; its exit code."""
        ...

    def signal(self, signum: int) -> None: ...

    def host_pids(self) -> set[int]:
        """Host PIDs that belong to this run now (for naming and killing holders)."""
        ...

    def remove(self) -> bool:
        """Take down whatever is left (container, escaped processes), finish its logs; True when
        nothing remains."""
        ...


@dataclass
class Supervised:
    exit_code: int | None
    stop_reason: str  # exited | timeout | SIGINT | SIGTERM | start-failed
    signals_sent: list[str]
    timings: dict[str, float]
    budget_s: float
    baseline: dict[str, int] = field(default_factory=dict)
    release: ReleaseResult | None = None
    killed_holders: list[HolderInfo] = field(default_factory=list)
    # Processes already holding the leased GPUs when the run began (a dirty baseline).
    baseline_holders: list[HolderInfo] = field(default_factory=list)
    removed: bool = True

    @property
    def stop_s(self) -> float | None:
        """Stop requested (or exit noticed) to VRAM back: what the budget is judged on."""
        if "vram_back_s" not in self.timings:
            return None
        return self.timings.get("exited_s", 0.0) + self.timings["vram_back_s"]

    @property
    def budget_margin_s(self) -> float | None:
        return None if self.stop_s is None else self.budget_s - self.stop_s
