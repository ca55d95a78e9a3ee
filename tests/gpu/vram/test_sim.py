from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.gpu.vram import sim
from tests.conftest import harness_cmd, harness_env

GIB = 1024**3


def start_holder(directory: Path, size: str = "1GiB", lag: float = 0.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        harness_cmd("simgpu", "hold", size, "--release-lag", str(lag)),
        env=harness_env(GPUCI_SIM_GPUS=str(directory)),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "holding" in proc.stdout.readline()  # type: ignore[union-attr]
    return proc


def test_memory_is_held_while_the_holder_lives_and_freed_when_the_kernel_says_it_died(sim_gpus: Path) -> None:
    backend = sim.SimBackend(sim_gpus)
    device = backend.devices()[0]
    proc = start_holder(sim_gpus)
    assert backend.used_bytes(device) == GIB
    assert [h.pid for h in backend.holders(device)] == [proc.pid]
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: only the kernel's lock release tells
    proc.wait()
    assert backend.used_bytes(device) == 0
    assert backend.holders(device) == []


def test_a_release_lag_keeps_memory_counted_after_death(sim_gpus: Path) -> None:
    backend = sim.SimBackend(sim_gpus)
    device = backend.devices()[0]
    proc = start_holder(sim_gpus, lag=1.0)
    proc.terminate()
    proc.wait()
    died = time.monotonic()
    assert backend.used_bytes(device) == GIB  # dead, yet still counted, as on ROCm
    assert backend.holders(device) == []  # but no process holds it
    while backend.used_bytes(device):
        assert time.monotonic() - died < 60  # a cap on a hang only
        time.sleep(0.05)
    assert time.monotonic() - died >= 0.9


def test_a_hold_that_does_not_fit_is_out_of_memory(sim_gpus: Path) -> None:
    with sim.hold(6 * GIB, 0, directory=sim_gpus):
        with pytest.raises(sim.OutOfMemory):
            sim.hold(3 * GIB, 0, directory=sim_gpus)
        with sim.hold(3 * GIB, 1, directory=sim_gpus):  # the other device has room
            pass
    with sim.hold(8 * GIB, 0, directory=sim_gpus):  # a clean release frees at once
        pass


def test_a_child_that_inherits_the_hold_keeps_it(sim_gpus: Path) -> None:
    backend = sim.SimBackend(sim_gpus)
    device = backend.devices()[0]
    held = sim.hold(GIB, 0, directory=sim_gpus)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], pass_fds=(held.fd,))
    try:
        os.close(held.fd)  # this process lets go; the child still has the descriptor
        held.fd = -1
        assert backend.used_bytes(device) == GIB
        assert [h.pid for h in backend.holders(device)] == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert backend.used_bytes(device) == 0


def test_gpus_lists_devices_and_holders(sim_gpus: Path, run_harness) -> None:
    proc = start_holder(sim_gpus, "2GiB")
    try:
        done = run_harness("gpus", "--vram-backend", "sim", GPUCI_SIM_GPUS=str(sim_gpus))
    finally:
        proc.kill()
        proc.wait()
    assert done.returncode == 0, done.stderr
    assert "2.0 GiB / 8.0 GiB" in done.stdout
    assert f"pid {proc.pid:>7}" in done.stdout and "simgpu hold 2GiB" in done.stdout


def test_a_hold_in_a_container_is_seen_on_the_host_by_host_pid(sim_gpus: Path, cpu_image, docker_client) -> None:
    root = Path(__file__).resolve().parents[3]
    container = docker_client.containers.run(
        cpu_image.tag,
        ["python3", "-m", "harness", "simgpu", "hold", "1GiB"],
        detach=True,
        init=True,
        environment={"GPUCI_SIM_GPUS": "/sim", "PYTHONPATH": "/src"},
        volumes={str(sim_gpus): {"bind": "/sim", "mode": "rw"}, str(root): {"bind": "/src", "mode": "ro"}},
    )
    try:
        backend = sim.SimBackend(sim_gpus)
        device = backend.devices()[0]
        deadline = time.monotonic() + 120
        while backend.used_bytes(device) != GIB:
            assert time.monotonic() < deadline, container.logs()
            time.sleep(0.05)
        host_pids = {int(row[1]) for row in container.top()["Processes"]}
        assert {h.pid for h in backend.holders(device)} <= host_pids
        assert backend.holders(device)
    finally:
        container.remove(force=True)
    assert sim.SimBackend(sim_gpus).used_bytes(device) == 0
