"""The GPUs stage of one run: its GPUs leased (`lease`), and how they reach its container (`for_container`).

The run asks twice and gets typed answers: a `Leased` (the watch over the leased devices and the lease
itself), then, where it runs in a container, the `RunDevices` its plan takes: the vendor's device
options, the simulated GPUs' folder and variables, and each other vendor's GPUs hidden.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from harness.errors import InfrastructureError
from harness.gpu import lease as leases
from harness.gpu.devices import container_devices, missing_gpu
from harness.gpu.handoff import RemoveContainers, hand_over
from harness.gpu.lease import Lease
from harness.gpu.vendors import for_backend, open_backend, vendors
from harness.gpu.vendors.vendor import DeviceOptions, EngineRuntimes
from harness.gpu.vram import sim as simgpu
from harness.gpu.vram.release import VramWatch

# Where the simulated GPUs' folder is mounted in a run's container.
SIM_MOUNT = "/gpuci/simgpu"


@dataclass(frozen=True)
class LeaseAsk:
    """What a run asks of the GPUs stage: how many GPUs of which backend, for which run, how long it
    waits for them, and how their memory's release is judged."""

    platform: str
    backend: str  # --vram-backend, else the platform's vendor's
    num_gpus: int
    run_id: str
    lease_timeout_s: float
    vram_timeout_s: float
    tolerance_bytes: int
    cpu_session: str | None = None  # named where the platform's GPU is missing here


@dataclass(frozen=True)
class Leased:
    """The run's GPUs: watched for release (None without GPUs) and held against other runs."""

    watch: VramWatch | None = None
    held: Lease | None = None

    def let_go(self) -> None:
        if self.watch:
            self.watch.backend.close()
        if self.held:
            self.held.release()


@dataclass(frozen=True)
class RunDevices:
    """The run's GPUs as its container gets them."""

    watch: VramWatch | None
    # The vendor's container options (nodes, requests, groups, variables the step cannot change).
    options: DeviceOptions = field(default_factory=DeviceOptions)
    # Host folder → container path: the simulated GPUs' folder, where those are leased.
    mounts: tuple[tuple[str, str], ...] = ()
    # Variables that pin the workload to its GPUs where the backend's vendor reads them (a step may set its own).
    env: dict[str, str] = field(default_factory=dict)
    # Set last, over the step's and the image's: each other vendor's GPUs hidden; None removes the variable.
    guard: tuple[tuple[str, str | None], ...] = ()


def lease(ask: LeaseAsk, remove_containers: RemoveContainers | None = None) -> Leased:
    """The run's GPUs, leased so no other run on this host takes them, cleared of what a crashed
    older run left on them (its containers by `remove_containers`), and watched for release."""
    if ask.num_gpus == 0:
        return Leased()
    vendor = for_backend(ask.backend)
    if vendor is not None and vendor.platform == ask.platform:  # its own backend: say plainly when its GPU is absent
        missing = missing_gpu(ask.platform, ask.cpu_session)
        if missing:
            raise InfrastructureError(missing)
    if ask.backend == "sim":
        simgpu.init(simgpu.default_directory())
    backend = open_backend(ask.backend)
    candidates = backend.devices()
    if len(candidates) < ask.num_gpus:
        backend.close()
        raise InfrastructureError(
            f"the step needs {ask.num_gpus} GPU(s) and the {backend.name} backend sees {len(candidates)}."
        )
    owner = f"run {ask.run_id} (pid {os.getpid()})"
    try:
        held = leases.acquire(candidates, ask.num_gpus, owner, timeout=ask.lease_timeout_s)
    except BaseException:  # no free GPU in time, or a cancel while waiting for one
        backend.close()
        raise
    leased = Leased(VramWatch(backend, held.devices, ask.vram_timeout_s, ask.tolerance_bytes), held)
    try:
        hand_over(leased.watch, held, ask.run_id, remove_containers)  # type: ignore[arg-type]
    except BaseException:  # the GPU not back in time, or a cancel while waiting for it
        leased.let_go()
        raise
    return leased


def for_container(platform: str, watch: VramWatch | None, runtimes: EngineRuntimes) -> RunDevices:
    """How the leased GPUs reach the container: the platform's vendor's options (the engine's runtimes
    asked only by a vendor that needs them), the simulated GPUs' folder, and the guard."""
    return run_devices(watch, container_devices(platform, watch.devices if watch else [], runtimes))


def run_devices(watch: VramWatch | None, options: DeviceOptions) -> RunDevices:
    """The vendor's `options` for the leased GPUs with the simulated GPUs' folder and the guard."""
    mounts: tuple[tuple[str, str], ...] = ()
    env: dict[str, str] = {}
    if watch and watch.backend.name == "sim":
        mounts = ((str(simgpu.default_directory().resolve()), SIM_MOUNT),)
        # Simulated devices keep host numbering inside; a runtime that passes real GPUs renumbers them.
        env = {simgpu.ENV: SIM_MOUNT, **visible_env(watch)}
    return RunDevices(watch, options, mounts, env, _guard(watch, options.env))


def visible_env(watch: VramWatch | None) -> dict[str, str]:
    """Pin a workload to the leased GPUs, by the variable the runtime of the backend's vendor reads
    before initialising (that vendor's pinning rule: by UUID or by index)."""
    if watch is None:
        return {}
    vendor = for_backend(watch.backend.name)
    return vendor.visible_env(watch.devices) if vendor else {}


def _guard(watch: VramWatch | None, device_env: dict[str, str]) -> tuple[tuple[str, str | None], ...]:
    """Every vendor's GPUs this run did not lease hidden, and a leased vendor's variable left to its
    device options, never the step's."""
    leased = for_backend(watch.backend.name) if watch is not None else None
    guard: list[tuple[str, str | None]] = []
    for vendor in vendors():
        for name, hidden in vendor.hidden_env:
            if vendor is not leased:
                guard.append((name, hidden))
            else:
                guard.append((name, device_env.get(name)))
    return tuple(guard)
