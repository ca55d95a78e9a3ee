"""The platforms: one for each registered vendor (harness.gpu.vendors), which names it."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError
from harness.gpu.vendors import Vendor, for_platform, vendors


@dataclass(frozen=True)
class Platform:
    name: str
    # Directory under containers/ holding the image recipe.
    recipe: str
    # The vendor whose GPUs it runs on: how they reach a container, which VRAM backend measures them.
    vendor: Vendor
    # Seconds a stop may take, from stop requested to VRAM back at baseline.
    shutdown_budget_s: float

    @property
    def vram_backend(self) -> str:
        return self.vendor.backend


def platform_of(vendor: Vendor) -> Platform:
    return Platform(vendor.platform, vendor.platform, vendor, vendor.shutdown_budget_s)


def platform_names() -> tuple[str, ...]:
    """Every platform, in the registry's order (cpu, cuda, rocm, then any vendor registered later)."""
    return tuple(v.platform for v in vendors())


def get_platform(name: str) -> Platform:
    vendor = for_platform(name)
    if vendor is None:
        raise UsageError(f"unknown platform {name!r}; gpuci knows {', '.join(platform_names())}.")
    return platform_of(vendor)
