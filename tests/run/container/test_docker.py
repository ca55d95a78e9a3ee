"""The container backend: a run's image bounded in time, the package mounted for the plugin, a RunSpec through
the real engine, and its `docker run` twin used for interactive shells."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from harness.run.container.docker import docker_run_args
from harness.run.spec import BindMount, RunSpec
from tests.conftest import ROOT


def test_the_docker_run_twin_of_a_spec_sees_the_same_container(cpu_image, tmp_path) -> None:
    (tmp_path / "hello.txt").write_text("from the checkout\n")
    spec = RunSpec(
        image=cpu_image.tag,
        command=("true",),
        name=f"gpuci-test-twin-{uuid.uuid4().hex[:12]}",  # a suite beside this one makes its twin too
        env={"STEP_VAR": "42"},
        mounts=(BindMount(str(tmp_path), "/workspace"),),
        working_dir="/workspace",
        labels={"gpuci.test": "twin"},
    )
    args = [a for a in docker_run_args(spec, ["sh", "-c", "echo $STEP_VAR; pwd; cat hello.txt; cat /proc/1/comm"])]
    args.remove("-it")  # no terminal in a test
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:3] == ["42", "/workspace", "from the checkout"]
    assert out[3] == "docker-init"  # PID 1 is an init, as in supervised runs


def test_an_image_slower_than_its_bound_stops_the_run_with_75_saying_what_to_do(run_harness, tmp_path: Path) -> None:
    root = tmp_path / "slow"
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    shutil.copytree(ROOT / "containers", root / "containers")
    marker = f"gpuci-slow-{tmp_path.name}"
    with open(root / "containers" / "cpu" / "Dockerfile", "a") as dockerfile:  # a new tag: built here, slowly
        dockerfile.write(f"\nRUN sleep 300 # {marker}\n")
    (root / ".buildkite" / "test_areas" / "slow.yaml").write_text(
        "platforms: [cpu]\nsteps:\n  - label: t\n    num_gpus: 0\n    commands: ['true']\n"
    )
    (root / "pyproject.toml").write_text('[tool.gpuci]\ninstall = "none"\nimage_timeout = 10\n')
    started = time.monotonic()
    done = run_harness("run", "--platform", "cpu", "--area", "slow", "--root", str(root))
    took = time.monotonic() - started
    assert done.returncode == 75, done.stderr[-3000:]
    assert "took longer than 10 s to build or pull (image_timeout)" in done.stderr and "Traceback" not in done.stderr
    assert took < 120, took  # not the 300 s the build would have taken
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    assert report["outcome"] == "infrastructure" and report["gpuci_exit_code"] == 75
    time.sleep(3)
    listed = ["docker", "ps", "--no-trunc", "--format", "{{.Command}}"]
    building = subprocess.run(listed, capture_output=True, text=True)
    assert marker not in building.stdout  # the engine's build went with the connection


def test_the_package_mounted_for_the_plugin_is_gpuci_s_whole_package() -> None:
    # Counted up from the module that plans the mount: a move of that module must not mount a sub-folder
    # instead (every container run then fails with "No module named 'harness.pytest_plugin'").
    from harness.run.plan import HARNESS_PACKAGE

    assert (HARNESS_PACKAGE / "pytest_plugin.py").is_file() and (HARNESS_PACKAGE / "plugin").is_dir()
    assert HARNESS_PACKAGE == ROOT / "harness"
