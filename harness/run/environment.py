"""A run's environment: the variables and labels its workload gets, on the host or in a container."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from harness.gpu.vendors import for_backend, vendors
from harness.gpu.vram import sim as simgpu
from harness.run.cleanup.reaper import (
    PROJECT_ENV,
    PROJECT_LABEL,
    SUPERVISOR_PID_ENV,
    SUPERVISOR_START_ENV,
    project_id,
    supervisor_identity,
)
from harness.run.options import PYTEST_PLUGIN_ARGS, RunOptions
from harness.run.spec import REPORT_MOUNT
from harness.run.supervise.supervised import VramWatch

# Where gpuci's own package is mounted (read-only) in every run's container.
HARNESS_LIB = "/opt/gpuci/lib"


def visible_devices_env(platform_name: str, watch: VramWatch | None) -> dict[str, str]:
    """Pin the workload to the leased GPUs, by the variable the runtime of the backend's vendor reads
    before initialising (that vendor's pinning rule: by UUID or by index)."""
    if watch is None:
        return {}
    vendor = for_backend(watch.backend.name)
    return vendor.visible_env(watch.devices) if vendor else {}


def guard_devices(env: dict[str, str], watch: VramWatch | None, device_env: dict[str, str]) -> dict[str, str]:
    """`env` with every vendor's GPUs this run did not lease hidden (set last, over the step's `env`
    and the image's ENV), and a leased vendor's variable left to its device options, never the step's."""
    leased = for_backend(watch.backend.name) if watch is not None else None
    guarded = dict(env)
    for vendor in vendors():
        for name, hidden in vendor.hidden_env:
            if vendor is not leased:
                guarded[name] = hidden
            elif name in device_env:
                guarded[name] = device_env[name]
            else:
                guarded.pop(name, None)
    return guarded


def run_labels(root: Path) -> dict[str, str]:
    """Container labels naming the supervisor and the project, so a reaper can tell a live run from
    a crashed one, and its project's runs from others'."""
    me = supervisor_identity()
    return {
        "gpuci.supervisor-pid": me["pid"],
        "gpuci.supervisor-start": me["start"],
        "gpuci.host": me["host"],
        PROJECT_LABEL: project_id(root),
    }


def supervisor_env(root: Path) -> dict[str, str]:
    """The same, in every workload process's environment (for GPU holders that outlive a run)."""
    me = supervisor_identity()
    return {SUPERVISOR_PID_ENV: me["pid"], SUPERVISOR_START_ENV: me["start"], PROJECT_ENV: project_id(root)}


def container_env(
    step_env: dict[str, str], options: RunOptions, run_id: str, extra: dict[str, str], shards: list[str]
) -> dict[str, str]:
    addopts = [f"--junitxml={REPORT_MOUNT}/junit.xml", *PYTEST_PLUGIN_ARGS, *shards, *options.pytest_args]
    env = {
        "HOME": "/tmp",
        # The checkout (and its src/ layout), then gpuci's own package for the plugin: mounted read-only
        # there, so a repository that is not gpuci's runs gpuci's plugin without installing it.
        "PYTHONPATH": f"{options.workspace}:{options.workspace}/src:{HARNESS_LIB}",
        "GPUCI_RUN_ID": run_id,
        "GPUCI_PLATFORM": options.platform,
        "GPUCI_REPORT_DIR": REPORT_MOUNT,
        "GPUCI_IN_CONTAINER": "1",
        **supervisor_env(options.root),
        "PYTEST_ADDOPTS": shlex.join(addopts),
        **extra,
        **step_env,
    }
    for name in options.pass_env:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def host_env(options: RunOptions, run_id: str, watch: VramWatch | None, **extra: str) -> dict[str, str]:
    """A host workload's environment: the run's id and supervisor (for the reaper), its GPUs."""
    # A run starts afresh: an xdist worker's identity (gpuci called from inside a pytest worker) would
    # make the step's own pytest believe it is that worker.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env = {
        **inherited,
        "GPUCI_RUN_ID": run_id,
        "GPUCI_PLATFORM": options.platform,
        **supervisor_env(options.root),
        **extra,
    }
    if watch and watch.backend.name == "sim":
        env[simgpu.ENV] = str(simgpu.default_directory())
    env.update(visible_devices_env(options.platform, watch))
    return env
