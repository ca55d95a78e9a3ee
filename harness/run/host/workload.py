"""The host backend (`--no-container`): a step as a host workload under the same supervisor, the checkout
as it is. `prepare` answers the run with a `HostPart`: the workload and what the report says of it."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.gpu.for_run import visible_env
from harness.gpu.vram import sim as simgpu
from harness.gpu.vram.release import VramWatch
from harness.run.buildkite.sharding import shard_args
from harness.run.cleanup.reaper import identity
from harness.run.logs import LogTarget
from harness.run.options import PYTEST_PLUGIN_ARGS, RunOptions
from harness.run.run import Run

if TYPE_CHECKING:  # the host backend's process tree (psutil) is imported by a host run only
    from harness.run.host.process import HostWorkload


@dataclass(frozen=True)
class HostPart:
    """What the host backend made ready: the workload, and the report's `spec` (redacted)."""

    workload: HostWorkload
    spec: dict[str, Any]


def prepare(run: Run, watch: VramWatch | None) -> HostPart:
    options, step, area = run.options, run.step, run.area
    assert step is not None and run.outbox is not None
    outbox = run.outbox.resolve()
    shards = shard_args(outbox, str(outbox), f"{options.platform}_{area}", options.root, run.ci.parallel_share)
    addopts = [
        f"--junitxml={outbox}/junit.xml",
        *PYTEST_PLUGIN_ARGS,
        *shards,
        *options.pytest_args,
    ]
    env = host_env(
        options,
        run.run_id,
        watch,
        **step.env,
        GPUCI_REPORT_DIR=str(outbox),
        GPUCI_VRAM_GUARD="1" if watch else "0",
        GPUCI_RUN_GPUS=",".join(d.id for d in watch.devices) if watch else "",
        GPUCI_STEP_TIMEOUT_S=f"{run.timeout_s or ''}",
        PYTEST_ADDOPTS=shlex.join(addopts),
        PYTHONPATH=os.pathsep.join(p for p in (str(options.root), os.environ.get("PYTHONPATH")) if p),
    )
    cwd = options.host_path(step.working_dir)
    command = ["bash", "-ec", "\n".join(step.commands)]
    spec = {
        "command": [run.redactor.text(c) for c in command],
        "cwd": str(cwd),
        "env": run.redactor.env({k: v for k, v in env.items() if k.startswith(("GPUCI_", "PYTEST_"))}),
    }
    log = LogTarget(run.directory / "output.log", run.redactor, echo=options.echo)
    from harness.run.host.process import HostWorkload

    return HostPart(HostWorkload(command, env, cwd, log), spec)


def host_env(options: RunOptions, run_id: str, watch: VramWatch | None, **extra: str) -> dict[str, str]:
    """A host workload's environment: the run's id and supervisor (for the reaper), its GPUs."""
    # A run starts afresh: an xdist worker's identity (gpuci called from inside a pytest worker) would
    # make the step's own pytest believe it is that worker.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env = {
        **inherited,
        "GPUCI_RUN_ID": run_id,
        "GPUCI_PLATFORM": options.platform,
        **identity(options.root)[1],
        **extra,
    }
    if watch and watch.backend.name == "sim":
        env[simgpu.ENV] = str(simgpu.default_directory())
    env.update(visible_env(watch))
    return env
