"""A step as a host workload (`--no-container`): the same supervisor, the checkout as it is."""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING

from harness.run.buildkite.sharding import shard_args
from harness.run.environment import host_env
from harness.run.options import PYTEST_PLUGIN_ARGS
from harness.run.run import Run
from harness.run.supervise.supervised import VramWatch

if TYPE_CHECKING:  # the host backend's process tree (psutil, ctypes) is imported only for a host run
    from harness.run.host.process import HostWorkload


def host_workload(run: Run, watch: VramWatch | None) -> HostWorkload:
    options, step, area = run.options, run.step, run.area
    assert step is not None and run.outbox is not None
    outbox = run.outbox.resolve()
    shards = shard_args(outbox, str(outbox), f"{options.platform}_{area}", options.root)
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
    run.report.spec = {
        "command": [run.redactor.text(c) for c in command],
        "cwd": str(cwd),
        "env": run.redactor.env({k: v for k, v in env.items() if k.startswith(("GPUCI_", "PYTEST_"))}),
    }
    from harness.run.host.process import HostWorkload

    return HostWorkload(command, env, cwd, run.log_target())
