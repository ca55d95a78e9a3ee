"""A step's container planned before it is made: `plan(run, image, devices) -> RunSpec`.

The plan decides the mounts, devices, environment, limits, labels, the watcher's orders and which
variables are secrets, from what the run was asked and what was obtained for it (the image, the
GPUs' container options, the shard arguments and the Test Engine collector's folder). It talks to
no engine and writes nothing: executing the spec (harness.run.container.workload) does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.gpu.vram import sim as simgpu
from harness.run.buildkite import collector
from harness.run.cleanup.orphan import watch_env, watch_for, watched_command
from harness.run.environment import HARNESS_LIB, container_env, guard_devices, run_labels, visible_devices_env
from harness.run.mounts import project_mounts
from harness.run.options import SIM_MOUNT, RunOptions
from harness.run.run import Run
from harness.run.secrets import SOURCE_LINE, split_env
from harness.run.spec import DEFAULT_PIDS_LIMIT, REPORT_MOUNT, BindMount, Limits, RunSpec
from harness.run.supervise.supervised import VramWatch

if TYPE_CHECKING:
    from harness.declare.areas import Step
    from harness.gpu.devices import DeviceOptions
    from harness.images.record import ImageRecord

# Folders of the checkout that the host side reads or runs: never writable from a container.
STATE_FOLDERS = (".git", ".gpuci", ".nox")
# gpuci's own package, mounted read-only in every run's container for its pytest plugin.
HARNESS_PACKAGE = Path(__file__).resolve().parents[1]  # harness/run/plan.py: harness/


@dataclass(frozen=True)
class RunDevices:
    """The run's GPUs as its container gets them: the watch over the leased devices (None without
    GPUs) and the vendor's container options for them (nodes, NVIDIA requests, groups, variables)."""

    watch: VramWatch | None
    options: DeviceOptions


def plan(
    run: Run,
    image: ImageRecord,
    devices: RunDevices,
    shards: tuple[str, ...] = (),
    collector_at: Path | None = None,
) -> RunSpec:
    """The step's container, decided: what `ContainerWorkload` makes and the report's `spec` says."""
    options, step, area, run_id = run.options, run.step, run.area, run.run_id
    assert step is not None and area is not None and run.outbox is not None
    watch = devices.watch
    mounts = [
        BindMount(str(options.root.resolve()), options.workspace),
        *state_mounts(options.root, options.workspace),
        BindMount(str(run.outbox.resolve()), REPORT_MOUNT),
        BindMount(str(HARNESS_PACKAGE), f"{HARNESS_LIB}/harness", read_only=True),
        *project_mounts(options.mounts, options.root, options.policy, options.host_mounts),
    ]
    extra_env = {"GPUCI_AREA": area, "GPUCI_STEP": step.label, "GPUCI_VRAM_GUARD": "1" if watch else "0"}
    if watch:  # the run's GPUs: xdist workers divide them instead of leasing against the run
        extra_env["GPUCI_RUN_GPUS"] = ",".join(d.id for d in watch.devices)
    if watch and watch.backend.name == "sim":
        mounts.append(BindMount(str(simgpu.default_directory().resolve()), SIM_MOUNT))
        # Simulated devices keep host numbering inside; NVIDIA's runtime renumbers what it passes.
        extra_env.update({simgpu.ENV: SIM_MOUNT, **visible_devices_env(options.platform, watch)})
    timeout_s = run.timeout_s
    orders = watch_for(run.stop_policy, timeout_s)
    extra_env.update(watch_env(orders))
    if timeout_s:  # the plugin dumps a hanging test's stacks shortly before the stop
        extra_env["GPUCI_STEP_TIMEOUT_S"] = f"{timeout_s:g}"
        # The stop's time on the host's clock (a container shares it): a slow start inside the container
        # (a busy host) does not push the dump of a hanging test's stacks past the stop.
        extra_env["GPUCI_STEP_DEADLINE"] = f"{time.time() + timeout_s:.3f}"
    if collector_at is not None:  # each test's result to Buildkite's Test Engine, by Buildkite's collector
        mounts.append(BindMount(str(collector_at), collector.MOUNT, read_only=True))
        extra_env.update({**collector.build_variables(), collector.FOLDER_ENV: collector.MOUNT})
    # The token, where set, is among pass_env (run/commands): a secret, through the secrets file.
    env, secret = split_env(
        guard_devices(
            {**container_env(step.env, options, run_id, extra_env, list(shards)), **devices.options.env},
            watch,
            devices.options.env,
        ),
        set(options.pass_env),
    )
    commands = [SOURCE_LINE, *step.commands] if secret else list(step.commands)
    limits = step_limits(options, step)
    workdir = step.working_dir or options.default_working_dir or options.workspace
    return RunSpec(
        image=image.id,
        command=watched_command("\n".join(commands), orders),
        watch=orders,
        name=f"gpuci-{run_id}",
        env=env,
        secret_env=secret,
        mounts=tuple(mounts),
        working_dir=workdir if workdir.startswith("/") else f"{options.workspace}/{workdir}",
        labels={
            "gpuci.run-id": run_id,
            "gpuci.area": area,
            "gpuci.step": step.label,
            "gpuci.platform": options.platform,
            **run_labels(options.root),
        },
        devices=devices.options.nodes,
        gpu_requests=devices.options.requests,
        group_add=devices.options.groups,
        user="0:0" if step.run_as_root else f"{os.getuid()}:{os.getgid()}",
        network_mode=limits.network,
        limits=limits,
    )


def step_limits(options: RunOptions, step: Step) -> Limits:
    """The project's limits as the command resolved them (GPUCI_NETWORK over [tool.gpuci] network, by
    harness.declare.precedence) with the step's own in their place: a declared network wins."""
    declared = Limits(step.memory, step.cpus, step.pids_limit or DEFAULT_PIDS_LIMIT, step.network)
    return options.limits.under(declared)


def state_mounts(root: Path, workspace: str) -> list[BindMount]:
    """The checkout's folders the host trusts, read-only in the container: `.git` (its config and
    hooks run on the host), gpuci's state (runs, wheelhouse, image records) and nox's (the host runs
    its environments). The executor makes them first where missing (`prepare_state`)."""
    guarded = []
    for name in STATE_FOLDERS:
        path = root.resolve() / name
        if os.path.lexists(path) and not os.path.islink(path):  # a linked .git is no repository of ours
            guarded.append(BindMount(str(path), f"{workspace.rstrip('/')}/{name}", read_only=True))
    return guarded
