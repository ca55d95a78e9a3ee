"""Simulated GPUs (the cpu platform): gpuci's own stand-in for machines with none (harness.gpu.vram.sim).

The cpu platform needs no GPU; where a step asks for GPUs on it, it leases simulated ones, which a
container reaches through a mount of their directory (harness.gpu.for_run), pinned by
GPUCI_SIM_VISIBLE_DEVICES. The backend is never chosen automatically unless GPUCI_SIM_GPUS is set.
"""

from __future__ import annotations

from harness.gpu.vendors.vendor import BaseImage, LintNames, Vendor
from harness.gpu.vram import sim
from harness.gpu.vram.base import VramBackend


def open_backend() -> VramBackend:
    return sim.SimBackend()


VENDOR = Vendor(
    name="simulated",
    platform="cpu",
    shutdown_budget_s=2.1,
    backend="sim",
    open_backend=open_backend,
    # Like CUDA_VISIBLE_DEVICES, by the simulated devices' index.
    visible_variable=sim.VISIBLE_ENV,
    probe=False,
    image=BaseImage(
        "# gpuci cpu image: the embedded default: no GPU, runs anywhere Docker runs.", "python:3.11-slim-bookworm"
    ),
    lint=LintNames(skip_calls=("is_cpu",)),
)
