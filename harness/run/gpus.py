"""The run's GPUs: leased so no other run on this host takes them, and watched for release."""

from __future__ import annotations

import os

from harness.declare.platforms import get_platform
from harness.errors import InfrastructureError
from harness.gpu import lease
from harness.gpu.devices import missing_gpu
from harness.gpu.lease import Lease
from harness.gpu.vendors import open_backend
from harness.gpu.vram import sim as simgpu
from harness.run.cleanup.handoff import hand_over
from harness.run.options import RunOptions
from harness.run.supervise.supervised import VramWatch


def lease_gpus(
    options: RunOptions, num_gpus: int, run_id: str, cpu_session: str | None = None
) -> tuple[VramWatch | None, Lease | None]:
    """The run's GPUs, leased so no other run on this host takes them, cleared of what a crashed
    older run left on them, and watched for release."""
    if num_gpus == 0:
        return None, None
    platform = get_platform(options.platform)
    name = options.vram_backend or platform.vram_backend
    if name == platform.vram_backend:  # the vendor's own backend: say plainly when its GPU is absent
        missing = missing_gpu(options.platform, cpu_session)
        if missing:
            raise InfrastructureError(missing)
    if name == "sim":
        simgpu.init(simgpu.default_directory())
    backend = open_backend(name)
    candidates = backend.devices()
    if len(candidates) < num_gpus:
        backend.close()
        raise InfrastructureError(
            f"the step needs {num_gpus} GPU(s) and the {backend.name} backend sees {len(candidates)}."
        )
    owner = f"run {run_id} (pid {os.getpid()})"
    try:
        held = lease.acquire(candidates, num_gpus, owner, timeout=options.lease_timeout_s)
    except BaseException:  # no free GPU in time, or a cancel while waiting for one
        backend.close()
        raise
    watch = VramWatch(backend, held.devices, options.vram_timeout_s, options.vram_tolerance)
    try:
        hand_over(watch, held, run_id, use_docker=options.container)
    except BaseException:  # the GPU not back in time, or a cancel while waiting for it
        let_go(watch, held)
        raise
    return watch, held


def let_go(watch: VramWatch | None, held: Lease | None) -> None:
    if watch:
        watch.backend.close()
    if held:
        held.release()
