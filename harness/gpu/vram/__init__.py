"""VRAM backends behind one protocol: `nvml`, `amdsmi`, `sim`; chosen automatically or by name."""

from __future__ import annotations

from harness.errors import InfrastructureError, UsageError
from harness.gpu.vram.base import BackendUnavailable, Device, Holder, VramBackend

BACKEND_NAMES = ("nvml", "amdsmi", "sim")

__all__ = ["BACKEND_NAMES", "BackendUnavailable", "Device", "Holder", "VramBackend", "open_backend"]


def _open(name: str) -> VramBackend:
    if name == "nvml":
        from harness.gpu.vram.nvml import NvmlBackend

        return NvmlBackend()
    if name == "amdsmi":
        from harness.gpu.vram.amdsmi import AmdSmiBackend

        return AmdSmiBackend()
    if name == "sim":
        from harness.gpu.vram.sim import SimBackend

        return SimBackend()
    raise UsageError(f"unknown VRAM backend {name!r}; choose one of {', '.join(BACKEND_NAMES)} or auto.")


def open_backend(name: str | None = None) -> VramBackend:
    """The named backend, or automatically: NVML if it initialises, then amdsmi, then sim if configured."""
    import os

    from harness.gpu.vram.sim import ENV

    if name and name != "auto":
        try:
            return _open(name)
        except BackendUnavailable as exc:
            raise InfrastructureError(f"VRAM backend {name!r} is not available here: {exc}.") from None
    tried = []
    for candidate in ("nvml", "amdsmi"):
        try:
            backend = _open(candidate)
        except BackendUnavailable as exc:
            tried.append(f"{candidate}: {exc}")
            continue
        if backend.devices():
            return backend
        backend.close()
    if os.environ.get(ENV):
        return _open("sim")
    raise InfrastructureError(
        "no GPU backend found (" + "; ".join(tried) + f"). Set {ENV}=DIR to use simulated GPUs, or pass --vram-backend."
    )
