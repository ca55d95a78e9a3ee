"""Several GPUs through Docker, on simulated GPUs: a two-GPU step sees both, concurrent sessions get disjoint ones."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import harness_cmd, harness_env

AREA = """\
platforms: [cpu]
steps:
  - label: both
    num_gpus: 2
    commands: ["echo saw=$GPUCI_SIM_VISIBLE_DEVICES run=$GPUCI_RUN_GPUS"]
  - label: one
    commands: ["echo saw=$GPUCI_SIM_VISIBLE_DEVICES; mkdir -p seen; touch seen/gpu$GPUCI_SIM_VISIBLE_DEVICES;
      for i in $(seq 600); do [ $(ls seen | wc -l) -ge 2 ] && break; sleep 0.1; done"]
"""
# "one" holds its GPU until two GPUs were seen in the shared checkout (at most 60 s): the two runs
# overlap by cause, not by a sleep that a loaded machine's slower start of the second run outlasts.


def _saw(stdout: str) -> str:
    return next(line.split("saw=", 1)[1].split()[0] for line in stdout.splitlines() if "saw=" in line)


def test_a_two_gpu_step_sees_both_of_its_gpus(make_project, run_harness, cpu_image, sim_gpus) -> None:
    root = make_project(AREA, name="gpus")
    done = run_harness("run", "--platform", "cpu", "--area", "gpus", "--root", str(root), "--step", "both",
                       GPUCI_SIM_GPUS=str(sim_gpus))  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    assert _saw(done.stdout) == "0,1" and len(report["lease"]) == 2
    assert f"run={','.join(report['lease'])}" in done.stdout


def test_two_concurrent_sessions_get_disjoint_gpus(make_project, cpu_image, sim_gpus) -> None:
    root = make_project(AREA, name="gpus")
    command = harness_cmd("run", "--platform", "cpu", "--area", "gpus", "--root", str(root), "--step", "one")
    env = harness_env(GPUCI_SIM_GPUS=str(sim_gpus))
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    assert sorted(_saw(out) for out, _ in outputs) == ["0", "1"]  # one GPU each, never the same
