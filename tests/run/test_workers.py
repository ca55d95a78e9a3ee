"""xdist workers inside a gpuci run divide the run's GPUs: one each, no lease against the run itself."""

from __future__ import annotations

import json
import sys

import pytest

AREA = """\
platforms: [cpu]
steps:
  - label: workers
    num_gpus: 2
    commands: ["python3 -m pytest -n 2 --gpuci-gpus-per-worker 1 -q test_pin.py"]
"""
TEST = """\
import os
import pytest

@pytest.mark.parametrize("i", range(4))
def test_pinned(i, worker_id):
    open(f"seen-{worker_id}-{i}", "w").write(os.environ["GPUCI_SIM_VISIBLE_DEVICES"])
    assert "," not in os.environ["GPUCI_SIM_VISIBLE_DEVICES"]  # exactly one GPU per worker
"""


@pytest.mark.parametrize("mode", ["container", "host"])
def test_workers_of_a_two_gpu_step_each_get_one_of_its_gpus(
    make_project, run_harness, cpu_image, sim_gpus, mode
) -> None:
    python = sys.executable if mode == "host" else "python3"  # the host's interpreter has pytest
    root = make_project(AREA.replace("python3", python), name="workers")
    (root / "test_pin.py").write_text(TEST)
    extra = ["--no-container"] if mode == "host" else []
    done = run_harness(
        "run", "--platform", "cpu", "--area", "workers", "--root", str(root), *extra,
        GPUCI_SIM_GPUS=str(sim_gpus), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    seen: dict[str, set[str]] = {}
    for path in root.glob("seen-*"):
        seen.setdefault(path.name.split("-")[1], set()).add(path.read_text())
    assert len(seen) == 2 and all(len(v) == 1 for v in seen.values()), seen
    assert set.union(*seen.values()) == {"0", "1"}  # disjoint: each worker its own GPU of the run's two
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    # No worker leased against the run: that lease would wait its 60 s and fail the worker (exit 1 above).
    assert len(report["lease"]) == 2
