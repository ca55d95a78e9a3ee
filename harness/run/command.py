"""`python -m harness supervise`: any command, on the host or in an image, under the supervisor."""

from __future__ import annotations

import os
from pathlib import Path

from harness.declare.platforms import get_platform
from harness.declare.stop_policy import stop_policy
from harness.errors import ExitCode, GpuciError
from harness.gpu.for_run import LeaseAsk, Leased, lease
from harness.redact import Redactor
from harness.run.cleanup.reaper import identity
from harness.run.finish import finish, finish_failed, record_supervised
from harness.run.host.process import HostWorkload
from harness.run.host.workload import host_env
from harness.run.logs import LogTarget
from harness.run.options import RunOptions
from harness.run.run import Run, begin_report
from harness.run.supervise.supervised import Workload
from harness.run.supervise.supervisor import supervise


def execute_command(options: RunOptions, command: list[str], image: str | None, num_gpus: int) -> ExitCode:
    """`python -m harness supervise`: any command, on the host or in `image`, under the supervisor."""
    report = begin_report(options.root, "supervise", options.report_dir, options.platform)
    report.mode = "container" if image else "host"
    platform, config = get_platform(options.platform), options.config
    run_id = report.run_id
    run = Run(
        options,
        run_id,
        Path(report.report_dir or ""),
        platform,
        Redactor(os.environ),
        report,
        stop_policy(float(config.grace), float(config.vram_timeout)),
        platform.shutdown_budget_s,
        config.timeout,
    )
    log = LogTarget(run.directory / "output.log", run.redactor, echo=options.echo)
    leased = Leased()
    try:
        ask = LeaseAsk(
            options.platform,
            options.vram_backend or platform.vendor.backend,
            num_gpus,
            run_id,
            float(config.lease_timeout),
            float(config.vram_timeout),
            options.vram_tolerance,
        )
        remover = None
        if options.container:  # a crashed run's containers on the GPUs are cleared too
            from harness.run.container.docker import remove_crashed_containers as remover
        leased = lease(ask, remover)
        watch = leased.watch
        workload: Workload
        if image:
            from harness.images.engine import connect
            from harness.run.container.docker import ContainerWorkload
            from harness.run.spec import RunSpec

            spec = RunSpec(
                image=image,
                command=tuple(command),
                name=f"gpuci-{run_id}",
                labels={"gpuci.run-id": run_id, **identity(options.root)[0]},
                env=identity(options.root)[1],
                user=f"{os.getuid()}:{os.getgid()}",
            )
            run.report.spec = spec.to_report(run.redactor)
            workload = ContainerWorkload(connect(), spec, log)
        else:
            env = host_env(options, run_id, watch)
            run.report.spec = {"command": [run.redactor.text(c) for c in command], "cwd": os.getcwd()}
            workload = HostWorkload(command, env, Path.cwd(), log)
        sup = supervise(workload, timeout_s=run.timeout_s, budget_s=run.budget_s, stop=run.stop_policy, vram=watch)
        code = record_supervised(run, workload, watch, sup)
    except GpuciError as exc:
        finish_failed(run, exc, leased=leased)
        raise
    finally:
        leased.let_go()
    return finish(run, code, leased=leased)
