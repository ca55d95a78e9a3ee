"""The GPUs stage of one run, on simulated GPUs: a lease that holds them against other runs, and how they
reach a container (the simulated GPUs' folder, the pinning variable, other vendors' GPUs hidden)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InfrastructureError
from harness.gpu.for_run import SIM_MOUNT, LeaseAsk, for_container, lease, run_devices
from harness.gpu.vendors import vendors
from harness.gpu.vendors.vendor import DeviceOptions
from harness.gpu.vram import sim


def ask(num_gpus: int, run_id: str = "r1") -> LeaseAsk:
    return LeaseAsk("cpu", "sim", num_gpus, run_id, lease_timeout_s=0.2, vram_timeout_s=5, tolerance_bytes=0)


def test_a_step_without_gpus_leases_nothing() -> None:
    leased = lease(ask(0))
    assert leased.watch is None and leased.held is None
    leased.let_go()


def test_leased_gpus_are_held_against_another_run_until_let_go(sim_gpus: Path) -> None:
    first = lease(ask(2))
    assert first.watch is not None and len(first.watch.devices) == 2 and first.watch.timeout_s == 5
    with pytest.raises(InfrastructureError):  # both taken: the other run waits, then gives up
        lease(ask(1, "r2"))
    first.let_go()
    second = lease(ask(1, "r2"))
    assert second.held is not None and len(second.held.devices) == 1
    second.let_go()


def test_more_gpus_than_the_backend_sees_is_one_clear_error(sim_gpus: Path) -> None:
    with pytest.raises(InfrastructureError, match="needs 3 GPU"):
        lease(ask(3))


def test_simulated_gpus_reach_the_container_by_their_folder_and_index(sim_gpus: Path) -> None:
    leased = lease(ask(1))
    try:
        devices = for_container("cpu", leased.watch, lambda: pytest.fail("the simulated vendor asks no runtime"))
        assert devices.mounts == ((str(sim_gpus.resolve()), SIM_MOUNT),)
        assert devices.env[sim.ENV] == SIM_MOUNT and sim.VISIBLE_ENV in devices.env
    finally:
        leased.let_go()


def test_without_a_lease_every_vendors_gpus_are_hidden() -> None:
    hidden = {name: value for vendor in vendors() for name, value in vendor.hidden_env}
    assert hidden  # a vendor hides its GPUs from a container that leased none
    assert dict(run_devices(None, DeviceOptions()).guard) == hidden
