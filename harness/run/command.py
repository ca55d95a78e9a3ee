"""`python -m harness supervise`: any command, on the host or in an image, under the supervisor."""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness.declare.platforms import get_platform
from harness.errors import ExitCode, GpuciError
from harness.redact import Redactor
from harness.reports.report import new_run_id, run_directory
from harness.run.environment import host_env, run_labels, supervisor_env
from harness.run.finish import finish, finish_failed, new_context, supervise_into
from harness.run.gpus import lease_gpus, let_go
from harness.run.host import HostWorkload
from harness.run.options import RunOptions
from harness.run.supervisor import Workload


def execute_command(
    options: RunOptions, command: list[str], image: str | None, num_gpus: int, timeout_s: float | None
) -> ExitCode:
    """`python -m harness supervise`: any command, on the host or in `image`, under the supervisor."""
    started = time.monotonic()
    run_id = new_run_id("supervise")
    directory = run_directory(options.root, run_id, options.report_dir)
    redactor = Redactor(os.environ)
    platform = get_platform(options.platform)
    ctx = new_context(options, run_id, directory, container=bool(image), session="supervise")
    ctx.redactor = redactor
    watch, held = None, None
    try:
        watch, held = lease_gpus(options, num_gpus, run_id)
        workload: Workload
        if image:
            from harness.images.engine import connect
            from harness.run.container import ContainerWorkload
            from harness.run.spec import RunSpec

            spec = RunSpec(
                image=image,
                command=tuple(command),
                name=f"gpuci-{run_id}",
                labels={"gpuci.run-id": run_id, **run_labels(options.root)},
                env=supervisor_env(options.root),
                user=f"{os.getuid()}:{os.getgid()}",
            )
            ctx.report["spec"] = spec.to_report(redactor)
            workload = ContainerWorkload(connect(), spec, directory / "output.log", redactor, echo=options.echo)
        else:
            env = host_env(options, run_id, watch)
            ctx.report["spec"] = {"command": [redactor.text(c) for c in command], "cwd": os.getcwd()}
            workload = HostWorkload(command, env, Path.cwd(), directory / "output.log", redactor, echo=options.echo)
        code = supervise_into(ctx, workload, options, watch, timeout_s, platform.shutdown_budget_s)
    except GpuciError as exc:
        finish_failed(ctx, options, started, exc)
        raise
    finally:
        let_go(watch, held)
    return finish(ctx, options.root, options.report_dir, started, code)
