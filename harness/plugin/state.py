"""What the plugin keeps for one pytest session: the GPUs, their baseline, and the records it writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.declare.stop_policy import DEFAULT_VRAM_TIMEOUT_S
from harness.gpu.vendors import for_platform
from harness.gpu.vram.base import Device, VramBackend
from harness.gpu.vram.release import DEFAULT_TOLERANCE

DEFAULT_MARGIN_S = 0.5


@dataclass
class Record:
    test: str
    phase: str  # shutdown | startup-cold | startup-warm | vram-wait | ...
    seconds: float
    budget: float | None = None
    gpus: list[str] = field(default_factory=list)
    holders: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PluginState:
    platform: str
    backend: VramBackend | None = None
    devices: list[Device] = field(default_factory=list)
    baseline: dict[str, int] = field(default_factory=dict)
    guard: bool = False
    guard_timeout: float = DEFAULT_VRAM_TIMEOUT_S
    tolerance: int = DEFAULT_TOLERANCE
    records: list[Record] = field(default_factory=list)
    lease: Any = None
    current_test: str = ""

    @property
    def budget(self) -> float:
        vendor = for_platform(self.platform)
        return vendor.shutdown_budget_s if vendor else 2.1

    def record(self, phase: str, seconds: float, budget: float | None = None, **extra: Any) -> Record:
        rec = Record(self.current_test, phase, seconds, budget, [d.id for d in self.devices], **extra)
        self.records.append(rec)
        return rec
