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
