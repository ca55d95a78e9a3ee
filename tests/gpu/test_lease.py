from __future__ import annotations

import subprocess
import sys

import pytest

from harness.errors import ExitCode, InfrastructureError
from harness.gpu import lease
from harness.gpu.vram.base import Device
from tests.conftest import harness_env

GPUS = [Device(0, "GPU-lease-test-a", "sim", 1), Device(1, "GPU-lease-test-b", "sim", 1)]
HOLD = f"""
import sys, time
from harness.gpu import lease
from harness.gpu.vram.base import Device
held = lease.acquire([Device(0, "{GPUS[0].id}", "sim", 1)], 1, "other session (pid 4242)")
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture(autouse=True)
def private_locks(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPUCI_LOCK_DIR", str(tmp_path))


def test_two_sessions_get_disjoint_gpus() -> None:
    with lease.acquire(GPUS, 1, "first") as first, lease.acquire(GPUS, 1, "second") as second:
        assert {first.devices[0].id, second.devices[0].id} == {g.id for g in GPUS}


def test_a_taken_gpu_is_an_infrastructure_error_naming_the_holder(tmp_path) -> None:
    other = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"  # type: ignore[union-attr]
        with pytest.raises(InfrastructureError, match=r"held by other session \(pid 4242\)") as err:
            lease.acquire(GPUS[:1], 1, "me", timeout=0.5)
        assert err.value.exit_code == ExitCode.INFRASTRUCTURE
    finally:
        other.kill()  # a crash: no cleanup code runs
        other.wait()
    with lease.acquire(GPUS[:1], 1, "me", timeout=5) as mine:  # the kernel dropped the dead holder's lock
        assert mine.devices == GPUS[:1]


def test_two_runs_on_one_gpu_the_second_waits_then_exits_75(make_project, run_harness, tmp_path) -> None:
    from harness.gpu.vram import sim

    sim.init(tmp_path / "one-gpu", count=1)
    area = "platforms: [cpu]\nsteps:\n  - label: hold\n    commands: [python3 misbehave.py hold]\n"
    root = make_project(area, name="lease")
    env = {"GPUCI_SIM_GPUS": str(tmp_path / "one-gpu"), "GPUCI_LOCK_DIR": str(tmp_path)}
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--platform",
            "cpu",
            "--area",
            "lease",
            "--root",
            str(root),
            "--no-container",
            "--timeout",
            "300",  # held for as long as the second run may take to start on a loaded machine; ended below
        ],
        env=harness_env(**env),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "holds" in first.stdout.readline()  # type: ignore[union-attr]
        second = run_harness(
            "run",
            "--platform",
            "cpu",
            "--area",
            "lease",
            "--root",
            str(root),
            "--no-container",
            "--lease-timeout",
            "1",
            **env,
        )
        assert second.returncode == 75
        assert "held by run" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait()
