"""A step's container stops itself when its supervisor dies: nothing else has to run."""

from __future__ import annotations

import signal
import subprocess
import time

import docker

from tests.conftest import harness_cmd, harness_env

AREA = """\
platforms: [cpu]
steps:
  - label: stubborn
    commands: ["trap '' TERM; echo started; sleep 300"]
"""


def test_an_orphaned_container_is_gone_within_its_grace(
    make_project, cpu_image, docker_client: docker.DockerClient
) -> None:
    root = make_project(AREA, name="orphan")
    command = harness_cmd("run", "--platform", "cpu", "--area", "orphan", "--root", str(root), "--grace", "1")
    proc = subprocess.Popen(command, env=harness_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert "started" in proc.stdout.readline()  # type: ignore[union-attr]
    [container] = docker_client.containers.list(filters={"label": f"gpuci.supervisor-pid={proc.pid}"})
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    while time.monotonic() - killed < 30:
        container.reload()
        if container.status != "running":
            break
        time.sleep(0.1)
    stopped_after = time.monotonic() - killed
    assert container.status == "exited", f"still {container.status} {stopped_after:.1f}s after its supervisor died"
    assert stopped_after < 1 + 3  # its grace (1 s, ignored here, so SIGKILL) and the engine's own delays
    assert container.attrs["State"]["ExitCode"] == 137
    assert b"the supervisor is gone" in container.logs()
    container.remove(force=True)
