"""`python -m harness supervise`: any command, on the host or in an image, under the supervisor."""

from __future__ import annotations

import os
from pathlib import Path

from harness.declare.platforms import get_platform
from harness.errors import ExitCode, GpuciError
from harness.redact import Redactor
from harness.reports.report import new_run_id, run_directory
from harness.run.environment import host_env, run_labels, supervisor_env
from harness.run.finish import finish, finish_failed, supervise_into
from harness.run.gpus import lease_gpus, let_go
from harness.run.host.process import HostWorkload
from harness.run.options import RunOptions
from harness.run.run import Run
from harness.run.supervise.supervised import Workload


def execute_command(options: RunOptions, command: list[str], image: str | None, num_gpus: int) -> ExitCode:
    """`python -m harness supervise`: any command, on the host or in `image`, under the supervisor."""
    run_id = new_run_id("supervise")
    run = Run(
        options,
        run_id,
        run_directory(options.root, run_id, options.report_dir),
        get_platform(options.platform),
        Redactor(os.environ),
    )
    run.begin_report(container=bool(image), session="supervise")
    watch, held = None, None
    try:
        watch, held = lease_gpus(options, num_gpus, run_id)
        workload: Workload
        if image:
            from harness.images.engine import connect
            from harness.run.container.docker import ContainerWorkload
            from harness.run.spec import RunSpec

            spec = RunSpec(
                image=image,
                command=tuple(command),
                name=f"gpuci-{run_id}",
                labels={"gpuci.run-id": run_id, **run_labels(options.root)},
                env=supervisor_env(options.root),
                user=f"{os.getuid()}:{os.getgid()}",
            )
            run.report.spec = spec.to_report(run.redactor)
            workload = ContainerWorkload(connect(), spec, run.log_target())
        else:
            env = host_env(options, run_id, watch)
            run.report.spec = {"command": [run.redactor.text(c) for c in command], "cwd": os.getcwd()}
            workload = HostWorkload(command, env, Path.cwd(), run.log_target())
        code = supervise_into(run, workload, watch)
    except GpuciError as exc:
        finish_failed(run, exc)
        raise
    finally:
        let_go(watch, held)
    return finish(run, code)
