"""A crashed run never harms the next: the GPU is handed over only once nothing of it is left."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from harness.gpu.vram import sim
from tests.conftest import harness_cmd, harness_env

# Its own worker: the crashed runs' holders must not be reaped by another test's `reap --yes`.
pytestmark = pytest.mark.xdist_group("reap")

AREA = """\
platforms: [cpu]
steps:
  - label: crash
    commands: ["python3 misbehave.py hold-lagged"]
  - label: big
    commands: ["python3 misbehave.py big"]
"""


def _run(root, step: str, *extra: str) -> list[str]:
    return harness_cmd("run", "--platform", "cpu", "--area", "handoff", "--root", str(root), "--step", step, *extra)


@pytest.mark.parametrize("mode", ["container", "host"])
@pytest.mark.parametrize("kill_after_s", [0.0, 0.7])
def test_the_next_run_started_at_once_after_a_crash_passes(
    make_project, sim_gpus, cpu_image, mode: str, kill_after_s: float
) -> None:
    root = make_project(AREA, name="handoff")
    extra = ("--no-container",) if mode == "host" else ()
    env = harness_env(GPUCI_SIM_GPUS=str(sim_gpus))
    crashed = subprocess.Popen(_run(root, "crash", *extra), env=env, stdout=subprocess.PIPE, text=True)
    assert "holds 4 GiB" in crashed.stdout.readline()  # type: ignore[union-attr]
    time.sleep(kill_after_s)
    crashed.send_signal(signal.SIGKILL)  # the agent dies: no teardown, no report, no reap
    crashed.wait()
    done = subprocess.run(_run(root, "big", *extra), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    assert "6 GiB fit" in done.stdout
    assert "whose supervisor died; clearing what it left" in done.stderr
    assert "back at their baseline" in done.stderr
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    assert report["outcome"] == "passed" and not report.get("vram", {}).get("baseline_holders")
    backend = sim.SimBackend(sim_gpus)
    assert backend.used_bytes(backend.devices()[0]) == 0


def test_a_crashed_host_runs_helpers_that_hold_no_gpu_are_ended_too(make_project, sim_gpus) -> None:
    import psutil

    area = AREA.replace(
        '"python3 misbehave.py hold-lagged"', '"sleep 300 & sleep 301 & python3 misbehave.py hold-lagged"'
    )
    root = make_project(area, name="handoff")
    env = harness_env(GPUCI_SIM_GPUS=str(sim_gpus))
    crashed = subprocess.Popen(_run(root, "crash", "--no-container"), env=env, stdout=subprocess.PIPE, text=True)
    assert "holds 4 GiB" in crashed.stdout.readline()  # type: ignore[union-attr]
    run_id = next(p.name for p in (root / ".gpuci" / "runs").iterdir() if p.name != "latest")
    crashed.send_signal(signal.SIGKILL)
    crashed.wait()

    def of_crashed() -> list[int]:
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("GPUCI_RUN_ID") == run_id and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    assert len(of_crashed()) >= 3  # the holder and both helpers, orphaned
    done = subprocess.run(_run(root, "big", "--no-container"), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    deadline = time.monotonic() + 5
    while of_crashed() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert of_crashed() == []
