"""The platform table: each platform's recipe folder, device kind, VRAM backend, stop budget and
visible-devices variable. What a device kind or a platform's name means is still coded where it is used
(device options, container options, pinning, queues, init's recipes, the lint), keyed by these names."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError


@dataclass(frozen=True)
class Platform:
    name: str
    # Directory under containers/ holding the image recipe.
    recipe: str
    # How leased GPUs reach a container: "none", "nvidia" or "amd" (see harness/gpu/devices.py).
    device_kind: str
    # VRAM backend that measures this platform's GPUs (harness/gpu/vram/).
    vram_backend: str
    # Seconds a stop may take, from stop requested to VRAM back at baseline.
    shutdown_budget_s: float
    # Variable that pins a process to the leased GPUs, set before any CUDA/HIP init.
    visible_devices_env: str | None


PLATFORMS: dict[str, Platform] = {
    "cpu": Platform("cpu", "cpu", "none", "sim", 2.1, None),
    # HIP/RCCL teardown is slower than CUDA's, hence ROCm's larger budget.
    "cuda": Platform("cuda", "cuda", "nvidia", "nvml", 2.1, "CUDA_VISIBLE_DEVICES"),
    "rocm": Platform("rocm", "rocm", "amd", "amdsmi", 4.0, "HIP_VISIBLE_DEVICES"),
}
PLATFORM_NAMES: tuple[str, ...] = tuple(PLATFORMS)


def get_platform(name: str) -> Platform:
    try:
        return PLATFORMS[name]
    except KeyError:
        raise UsageError(f"unknown platform {name!r}; gpuci knows {', '.join(PLATFORM_NAMES)}.") from None
