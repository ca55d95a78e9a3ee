"""A step's container stops itself when its supervisor dies: nothing else has to run."""

from __future__ import annotations

import contextlib
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
    # Stopped by itself, long before its step's 300 s end; how soon after its grace is measured on
    # a quiet machine in bench/ (bench/results/h200-orphan.json), not under a loaded test suite.
    status = _status_once_stopped(container, 120)
    stopped_after = time.monotonic() - killed
    assert status != "running", f"still running {stopped_after:.1f}s after its supervisor died"
    if status == "exited":
        assert container.attrs["State"]["ExitCode"] == 137
        assert b"the supervisor is gone" in container.logs()
    with contextlib.suppress(docker.errors.APIError):  # gone, or being removed by a neighbour's reap
        container.remove(force=True)


HOSTILE = """\
platforms: [cpu]
steps:
  - label: hostile
    commands: ["trap '' TERM; kill -9 -1; echo killed-all; sleep 300"]
"""


def test_a_step_that_kills_every_process_it_can_still_dies_with_its_supervisor(
    make_project, cpu_image, docker_client: docker.DockerClient
) -> None:
    """The watcher in the container is gone (the step killed it); the janitor on the host is not."""
    root = make_project(HOSTILE, name="hostile")
    command = harness_cmd("run", "--platform", "cpu", "--area", "hostile", "--root", str(root), "--grace", "1")
    proc = subprocess.Popen(command, env=harness_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert "killed-all" in proc.stdout.readline()  # type: ignore[union-attr]
    [container] = docker_client.containers.list(filters={"label": f"gpuci.supervisor-pid={proc.pid}"})
    rows = [row[-1] for row in container.top(ps_args="-eo pid,args")["Processes"]]
    assert not [r for r in rows if "gpuci-watch" in r and not r.startswith("/sbin/docker-init")]  # watcher dead
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    status = _status_once_stopped(container, 120)  # the step's sleep is 300 s: stopped by the janitor
    stopped_after = time.monotonic() - killed
    assert status != "running", f"still running {stopped_after:.1f}s after its supervisor died"
    with contextlib.suppress(docker.errors.APIError):  # gone, or being removed by a neighbour's reap
        container.remove(force=True)


def _status_once_stopped(container, limit_s: float) -> str:
    """Its status once it is no longer running; "gone" once removed (a neighbour's `reap` on a shared
    engine removes containers whose supervisor is dead, as it should)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        try:
            container.reload()
        except docker.errors.NotFound:
            return "gone"
        if container.status != "running":
            return container.status
        time.sleep(0.1)
    return container.status


def test_a_janitor_leaves_a_container_its_supervisor_removed_alone() -> None:
    from harness.run.cleanup import janitor

    proc = janitor.start("no-such-container-" + str(time.time_ns()), 1.0, 0)
    janitor.release(proc)
    assert proc.returncode == 0  # it never looked for the container: a lookup would fail on this name

    import io
    import os

    read, write = os.pipe()
    os.write(write, b"do")
    os.close(write)  # the supervisor died mid-word: the container must be stopped
    with io.FileIO(read) as pipe:
        assert janitor.watch(pipe, 0) is True
    read, write = os.pipe()
    with io.FileIO(read) as pipe:
        started = time.monotonic()
        assert janitor.watch(pipe, 0.3) is True  # the deadline, with the supervisor still silent
        assert time.monotonic() - started >= 0.3
    os.close(write)
