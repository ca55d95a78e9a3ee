"""A layer container carries its creator: one a SIGKILLed build left is found and removed, one a live build
runs is never touched (real engine, a real build process killed mid-layer)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from harness.images import engine, layer_containers
from harness.owned import boot_id, start_ticks
from harness.run.cleanup import gc, reaper
from tests.conftest import harness_env

# A real build of a layer (harness/images/project_layer.build_layer) whose install sleeps: the test kills it there.
BUILD = """
import sys
from pathlib import Path
from harness.images.engine import connect
from harness.images.project_layer import LayerJob, build_layer
job = LayerJob(sys.argv[1], "gpuci-leftovers-test/never:made", {}, ["sh", "-c", "echo started; sleep 600"],
               ["opt/leftovers-test"], {}, {})
build_layer(connect(), job, Path(sys.argv[2]), Path(sys.argv[3]))
"""


def _mine(client, pid: int) -> list[engine.ContainerEntry]:
    return engine.list_containers(client, (layer_containers.PURPOSE, f"{layer_containers.PID}={pid}"))


def test_a_killed_builds_layer_container_is_removed_and_a_live_ones_kept(docker_client, cpu_image, tmp_path) -> None:
    stage = tmp_path / "build" / "stage"
    stage.mkdir(parents=True)
    env = harness_env(GPUCI_LOCK_DIR=str(tmp_path))  # this test's build lock and pins only
    build = subprocess.Popen(
        [sys.executable, "-c", BUILD, cpu_image.id, str(stage), str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not [c for c in _mine(docker_client, build.pid) if c.state == "running"]:
            assert build.poll() is None and time.monotonic() < deadline, build.stderr.read() if build.stderr else ""
            time.sleep(0.2)
        [container] = _mine(docker_client, build.pid)
        assert container.labels[layer_containers.BOOT] == boot_id()
        # Its build lives: neither reap's nor gc's list has it.
        assert container.id[:12] not in {g.id for g in gc.dead_layer_containers(docker_client)}
        build.send_signal(signal.SIGKILL)  # mid-layer: nothing of gpuci's runs after this
        build.wait()
        assert engine.container_exists(docker_client, container.id)  # left behind, as a killed build leaves it
        [found] = [g for g in gc.dead_layer_containers(docker_client) if g.id == container.id[:12]]
        assert container.name in found.detail
        # Removed as reap removes it (only this test's: others' on a shared engine are theirs to reap).
        assert reaper.clean([reaper.Leftover("container", found.id, None, found.detail)], docker_client) == []
        assert not engine.container_exists(docker_client, container.id)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        for left in _mine(docker_client, build.pid):
            engine.remove_container(docker_client, left.id)


def test_only_a_creator_gone_for_sure_makes_a_container_a_leftover() -> None:
    me = layer_containers.labels()
    assert not layer_containers.creator_gone(me)  # this process: alive
    assert layer_containers.creator_gone({**me, layer_containers.BOOT: "an-earlier-boot"})
    assert layer_containers.creator_gone({**me, layer_containers.TICKS: str(int(me[layer_containers.TICKS]) - 1)})
    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its PID names no process now
    assert layer_containers.creator_gone({**me, layer_containers.PID: str(ended.pid)})
    # Another host's build on a shared engine, and a container made before creators were labelled: not judged.
    assert not layer_containers.creator_gone({**me, layer_containers.HOST: f"not-{socket.gethostname()}"})
    assert not layer_containers.creator_gone(
        {"gpuci.purpose": "project-layer", layer_containers.HOST: me["gpuci.host"]}
    )
    assert start_ticks(os.getpid()) == int(me[layer_containers.TICKS])
