"""RunSpec through the real engine, and its `docker run` twin used for interactive shells."""

from __future__ import annotations

import subprocess
import uuid

from harness.run.container.docker import docker_run_args
from harness.run.spec import BindMount, RunSpec


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
