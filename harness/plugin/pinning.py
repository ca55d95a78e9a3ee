"""pytest-xdist workers pinned to their own GPUs (`--gpuci-gpus-per-worker N`).

Done in `pytest_load_initial_conftests`, before any conftest or test module can import torch and
initialise CUDA or HIP: the worker's visible-devices variable is set then, so
`torch.cuda.device_count()` is N in each worker. The variable comes from the VRAM backend that
sees the GPUs, whatever GPUCI_PLATFORM says: NVML -> CUDA_VISIBLE_DEVICES (by UUID, which CUDA
takes whatever its own device order), amdsmi -> HIP_VISIBLE_DEVICES, the simulated backend ->
GPUCI_SIM_VISIBLE_DEVICES.

Inside a gpuci run (GPUCI_RUN_GPUS names the run's leased GPUs) the workers divide the run's own
GPUs among themselves: the run holds their lease already, and a second lease against it would
wait for ever. Outside one, each worker leases its GPUs as any run does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from harness.gpu import lease
from harness.gpu.lease import Lease
from harness.gpu.vendors import FALLBACK, for_backend, open_backend
from harness.gpu.vram import sim as simgpu
from harness.gpu.vram.base import Device, VramBackend

# Set by a gpuci run in its workload's environment: the ids (UUIDs) of the GPUs it leased.
RUN_GPUS_ENV = "GPUCI_RUN_GPUS"


class PinningError(Exception):
    """Not enough GPUs for the workers (a usage error pytest reports)."""


@dataclass
class Pinned:
    backend: VramBackend
    devices: list[Device]
    lease: Lease | None
    variable: str
    value: str


def worker_index(worker: str) -> int:
    return int(worker.lstrip("gw") or 0)


def visible_env(backend_name: str, devices: list[Device]) -> dict[str, str]:
    """The variable that narrows what a process sees, by the vendor of the backend that sees the GPUs,
    and its pinning rule (NVML by UUID: CUDA's own order may differ from NVML's; others by index)."""
    vendor = for_backend(backend_name) or FALLBACK
    return vendor.visible_env(devices)


def pin_worker(worker: str, per_worker: int, backend_name: str | None) -> Pinned:
    backend = open_backend(backend_name)
    devices = backend.devices()
    run_gpus = [g for g in os.environ.get(RUN_GPUS_ENV, "").split(",") if g]
    if run_gpus:
        by_id = {d.id: d for d in devices}
        devices = [by_id[g] for g in run_gpus if g in by_id]
    index = worker_index(worker)
    mine = devices[index * per_worker : (index + 1) * per_worker]
    if len(mine) < per_worker:
        backend.close()
        where = f"the run's {len(devices)} GPU(s)" if run_gpus else f"the host's {len(devices)} GPU(s)"
        raise PinningError(
            f"--gpuci-gpus-per-worker {per_worker}: worker {worker} needs GPUs {index * per_worker}.."
            f"{(index + 1) * per_worker - 1} of {where}; use fewer workers (-n) or declare more num_gpus."
        )
    held = None
    if not run_gpus:
        held = lease.acquire(mine, per_worker, f"pytest worker {worker} (pid {os.getpid()})", timeout=60)
    ((variable, value),) = visible_env(backend.name, mine).items()
    os.environ[variable] = value
    if backend.name != "sim":  # the simulated GPUs follow the same pinning where tests use them
        os.environ[simgpu.VISIBLE_ENV] = ",".join(str(d.index) for d in mine)
    return Pinned(backend, mine, held, variable, value)
