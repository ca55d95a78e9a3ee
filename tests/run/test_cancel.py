"""A cancel before the workload exists: while the run waits for a GPU another run holds."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from harness.gpu import lease
from harness.gpu.vram import sim
from tests.conftest import harness_cmd, harness_env

AREA = "platforms: [cpu]\nsteps:\n  - label: gpu\n    commands: [python3 misbehave.py instant]\n"


def test_a_cancel_while_waiting_for_a_gpu_stops_the_run_reported_and_leaves_no_lease(
    make_project, sim_gpus, tmp_path
) -> None:
    root = make_project(AREA, name="wait")
    devices = sim.SimBackend(sim_gpus).devices()
    other = lease.acquire(devices, len(devices), "another run")  # every GPU taken
    report_dir = tmp_path / "report"
    try:
        proc = subprocess.Popen(
            harness_cmd(
                "run",
                "--platform",
                "cpu",
                "--area",
                "wait",
                "--root",
                str(root),
                "--no-container",
                "--lease-timeout",
                "120",
                "--report-dir",
                str(report_dir),
            ),
            env=harness_env(GPUCI_SIM_GPUS=str(sim_gpus)),
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in proc.stderr:  # type: ignore[union-attr]
            if "waiting for 1 free GPU" in line:
                break
        cancelled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=100)
        took = time.monotonic() - cancelled
    finally:
        other.release()
    report = json.loads((report_dir / "report.json").read_text())
    assert proc.returncode == 1 and took < 100  # the wait ends on the signal, not after the 120 s timeout
    assert report["outcome"] == "cancelled" and report["stop_reason"] == "SIGTERM"
    assert [p for p in lease.lease_files() if report["run_id"] in p.read_text()] == []
