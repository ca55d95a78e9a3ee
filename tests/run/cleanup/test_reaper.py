"""What crashed runs leave behind, found and cleaned up: a supervisor SIGKILLed mid-run."""

from __future__ import annotations

import signal
import subprocess
import time

import psutil
import pytest

from harness.gpu.vram import sim
from harness.run.cleanup.reaper import PROJECT_LABEL, project_id
from tests.conftest import harness_cmd, harness_env

# `reap --yes` cleans every dead run on the host: tests that reap share one xdist worker, so one
# never removes the containers another is still looking at (--dist loadgroup in pyproject.toml).
pytestmark = pytest.mark.xdist_group("reap")

AREA = """\
platforms: [cpu]
steps:
  - label: hold
    commands: ["python3 misbehave.py hold"]
"""


def own(root) -> tuple[str, str]:
    """reap's scope in a test: the project's containers (its label), and no image (none carries it)."""
    return ("--label", f"{PROJECT_LABEL}={project_id(root)}")


def start_and_kill_supervisor(root, sim_gpus, docker_client, *extra: str) -> str:
    """Start a run, wait until its workload holds memory, SIGKILL the supervisor; its run id."""
    env = harness_env(GPUCI_SIM_GPUS=str(sim_gpus))
    proc = subprocess.Popen(
        harness_cmd("run", "--platform", "cpu", "--area", "reap", "--root", str(root), *extra),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert "holds" in proc.stdout.readline()  # type: ignore[union-attr]
    runs = sorted((root / ".gpuci" / "runs").glob("*-cpu_reap-*"))
    proc.send_signal(signal.SIGKILL)  # no teardown, no report: a crashed supervisor
    proc.wait()
    return runs[-1].name


def test_reap_removes_the_container_of_a_killed_supervisor(
    make_project, sim_gpus, cpu_image, docker_client, run_harness
) -> None:
    root = make_project(AREA, name="reap")
    run_id = start_and_kill_supervisor(root, sim_gpus, docker_client)
    label = {"label": f"gpuci.run-id={run_id}"}
    # Left behind: stopped by its own orphan watcher once its supervisor died, never removed.
    assert docker_client.containers.list(all=True, sparse=True, filters=label)
    listed = run_harness("reap", "--root", str(root), *own(root), "--vram-backend", "sim", GPUCI_SIM_GPUS=str(sim_gpus))
    assert listed.returncode == 0 and "container" in listed.stdout and run_id in listed.stdout
    assert docker_client.containers.list(all=True, sparse=True, filters=label)  # listing alone touches nothing
    done = run_harness(
        "reap", "--root", str(root), *own(root), "--yes", "--vram-backend", "sim", GPUCI_SIM_GPUS=str(sim_gpus)
    )
    assert done.returncode == 0, done.stderr
    assert docker_client.containers.list(all=True, sparse=True, filters=label) == []
    backend = sim.SimBackend(sim_gpus)
    assert backend.used_bytes(backend.devices()[0]) == 0


def test_reap_kills_a_dead_runs_gpu_holder_and_spares_foreign_ones(make_project, sim_gpus, run_harness) -> None:
    root = make_project(AREA, name="reap")
    run_id = start_and_kill_supervisor(root, sim_gpus, None, "--no-container")
    foreign = subprocess.Popen(
        harness_cmd("simgpu", "hold", "1GiB", "--device", "1"),
        env=harness_env(GPUCI_SIM_GPUS=str(sim_gpus)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "holding" in foreign.stdout.readline()  # type: ignore[union-attr]
        done = run_harness(
            "reap", "--root", str(root), *own(root), "--yes", "--vram-backend", "sim", GPUCI_SIM_GPUS=str(sim_gpus)
        )
        assert done.returncode == 0, done.stderr
        assert f"(run {run_id})" in done.stdout and "foreign-holder" in done.stdout
        backend = sim.SimBackend(sim_gpus)
        devices = backend.devices()
        assert backend.used_bytes(devices[0]) == 0  # the dead run's holder is gone
        assert backend.used_bytes(devices[1]) == 1 << 30 and foreign.poll() is None  # not ours: spared
    finally:
        foreign.kill()
        foreign.wait()


def test_a_new_run_removes_its_sessions_crashed_container_first(
    make_project, sim_gpus, cpu_image, docker_client, run_harness
) -> None:
    root = make_project(AREA + "    timeout_in_minutes: 1\n", name="reap")
    crashed = start_and_kill_supervisor(root, sim_gpus, docker_client)
    done = run_harness(
        "run",
        "--platform",
        "cpu",
        "--area",
        "reap",
        "--root",
        str(root),
        "--timeout",
        "1",
        GPUCI_SIM_GPUS=str(sim_gpus),
    )
    # Cleared before anything starts: by the handoff where this run leased the GPU the crashed one
    # held, else by the run's own clean-up of its session's crashed containers.
    assert (
        "whose supervisor died; clearing what it left" in done.stderr
        or "crashed runs of this session left behind" in done.stderr
    ), done.stderr
    assert docker_client.containers.list(all=True, sparse=True, filters={"label": f"gpuci.run-id={crashed}"}) == []


def _processes_of(run_id: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.environ().get("GPUCI_RUN_ID") == run_id:
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_reap_ends_a_dead_runs_processes_that_hold_no_gpu(make_project, sim_gpus, run_harness) -> None:
    """A host-mode workload's helpers (no GPU memory) outlive a SIGKILLed supervisor too."""
    area = AREA.replace('"python3 misbehave.py hold"', '"sleep 300 & sleep 301 & python3 misbehave.py hold"')
    root = make_project(area, name="reap")
    run_id = start_and_kill_supervisor(root, sim_gpus, None, "--no-container")
    assert len(_processes_of(run_id)) >= 3  # the holder and both helpers, orphaned
    done = run_harness(
        "reap", "--root", str(root), *own(root), "--yes", "--vram-backend", "sim", GPUCI_SIM_GPUS=str(sim_gpus)
    )
    assert done.returncode == 0, done.stderr
    assert "process" in done.stdout and "sleep 30" in done.stdout
    deadline = time.monotonic() + 10
    while _processes_of(run_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_of(run_id) == []


def test_reap_touches_only_its_own_projects_runs_unless_told(
    make_project, sim_gpus, cpu_image, docker_client, run_harness, tmp_path
) -> None:
    root = make_project(AREA, name="reap")
    run_id = start_and_kill_supervisor(root, sim_gpus, docker_client)
    label = {"label": f"gpuci.run-id={run_id}"}
    other = tmp_path / "another-checkout"
    other.mkdir()
    spared = run_harness("reap", "--root", str(other), "--yes", "--vram-backend", "none", *own(other))
    assert spared.returncode == 0, spared.stderr
    assert run_id not in spared.stdout
    assert docker_client.containers.list(all=True, sparse=True, filters=label)  # another project's: untouched
    every = run_harness(
        "reap",
        "--root",
        str(other),
        "--yes",
        "--all-projects",
        "--label",  # every project's, of this run only: never a neighbour suite's crashed runs
        f"gpuci.run-id={run_id}",
        "--vram-backend",
        "sim",
        GPUCI_SIM_GPUS=str(sim_gpus),
    )
    assert every.returncode == 0, every.stderr
    assert run_id in every.stdout
    assert docker_client.containers.list(all=True, sparse=True, filters=label) == []


def test_reap_without_an_engine_says_it_could_not_look_and_exits_75(run_harness, tmp_path) -> None:
    done = run_harness(
        "reap",
        "--root",
        str(tmp_path),
        "--vram-backend",
        "none",
        DOCKER_HOST="unix:///nonexistent/docker.sock",
        GPUCI_LOCK_DIR=str(tmp_path),  # its own lock folder: not the lease files other suites left in /tmp
    )
    assert done.returncode == 75, done.stderr
    assert "could not look for containers" in done.stderr and "Traceback" not in done.stderr
    assert "nothing left behind outside containers" in done.stdout


def test_a_stale_build_folder_nested_3000_deep_is_reaped(tmp_path) -> None:
    """A killed build leaves its folder, which the project's layer container wrote (its /tmp): reap's
    shutil.rmtree raised RecursionError out of `gpuci reap` on 3,000 nested folders."""
    import os

    from harness.run.cleanup.reaper import Leftover, clean

    folder = tmp_path / "context-1-2.00-abc"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    try:
        assert clean([Leftover("build-folder", str(folder), None, "its build was killed")], None) == []
        assert not folder.exists()
    finally:
        from harness.untrusted import remove_tree

        remove_tree(folder)  # pytest's own clean-up of old temporary folders recurses: never leave it one
