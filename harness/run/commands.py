"""`gpuci run` and `gpuci supervise`, read straight through: the request resolved once (harness.declare.request),
then each step as its own run: begun (harness.run.run), its GPUs leased (harness.gpu.for_run), its workload
prepared by a backend (container: harness.run.container.docker; host: harness.run.host.workload),
supervised (harness.run.supervise.supervisor), and its report assembled from each stage's typed answer
and written (harness.run.finish). `repro` takes the same path (`run_request`).
"""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING, Any

from harness.errors import SEVERITY, ExitCode, GpuciError, UsageError, gpuci_cause

if TYPE_CHECKING:  # Docker and YAML are imported only where used: host mode runs without them.
    from pathlib import Path

    from harness.declare.request import RunRequest, StepRequest
    from harness.gpu.for_run import Leased
    from harness.gpu.handoff import RemoveContainers
    from harness.run.container.docker import ContainerPart
    from harness.run.finish import Prepared
    from harness.run.options import RunOptions
    from harness.run.run import Run


def run_command(args: argparse.Namespace) -> int:
    from harness.run.cancel import GATE

    GATE.install()  # from here a cancel is noted, never a silent death without a report
    from harness.declare.request import request_for
    from harness.state import check_state

    root = args.root.resolve()
    check_state(root)  # gpuci's state is never the commit's, nor a link
    request = request_for(root, args)  # every setting, once: flag, GPUCI_<KEY>, [tool.gpuci], default
    options = run_options(
        request,
        root,
        pytest_args=tuple(args.pytest_args),
        container=not args.no_container,
        base_image=args.base_image,
        build=args.build,
        **_command_line(args),
    )
    try:
        return run_request(options, request)
    finally:
        # The report is final and the exit code decided: a late cancel (Python restores the default
        # handlers while it shuts down) must not turn a written "passed" into a death by SIGTERM.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def run_options(request: RunRequest, root: Path, **only: Any) -> RunOptions:
    """A run's options from its request, for `run` and `repro` alike; `only` holds what only the command
    line says (pytest arguments, --no-container, --build, …)."""
    from harness.run.options import RunOptions

    return RunOptions(
        root=root,
        platform=request.platform.name,
        config=request.config,
        ca_bundle=request.ca_bundle,
        pass_env=request.pass_env,
        binds=request.mounts,
        **only,
    )


def run_request(options: RunOptions, request: RunRequest) -> ExitCode:
    """Each step of the request as its own run; the worst exit code."""
    worst = ExitCode.PASSED
    for planned in request.steps:
        code = _run_step(options, request, planned)
        worst = max(worst, code, key=SEVERITY.index)
    return worst


def _run_step(options: RunOptions, request: RunRequest, planned: StepRequest) -> ExitCode:
    from harness.console import say
    from harness.gpu.for_run import LeaseAsk, lease
    from harness.run.cancel import GATE
    from harness.run.finish import finish, finish_failed, record_supervised, record_tests
    from harness.run.run import begin_run
    from harness.run.secrets import remove_secrets
    from harness.run.supervise.supervisor import supervise

    run = begin_run(options, request, planned)
    say(f"{request.session} · step {planned.step.label!r} · run {run.run_id}")
    assert run.outbox is not None
    leased: Leased | None = None  # None until the lease answers: a run stopped before says no lease
    part = None
    try:
        with GATE.cancellable():  # a cancel before the workload runs stops the run here, reported
            # A cancel while waiting for a GPU stops the wait at once; the lease takes nothing half.
            ask = LeaseAsk(
                options.platform,
                options.vram_backend or request.platform.vendor.backend,
                planned.step.num_gpus,
                run.run_id,
                float(options.config.lease_timeout),
                float(options.config.vram_timeout),
                options.vram_tolerance,
                request.cpu_session,
            )
            leased = lease(ask, _crashed_containers_remover(options))
            part = _prepare(run, leased)
        if options.reproduction and options.reproduction.shell:
            return _shell(run, part, leased)  # type: ignore[arg-type]  # a container's (--no-container refused)
        sup = supervise(
            part.workload, timeout_s=run.timeout_s, budget_s=run.budget_s, stop=run.stop_policy, vram=leased.watch
        )
        code = record_supervised(run, part.workload, leased.watch, sup)
        code = record_tests(run, part.workload, code)
    except GpuciError as exc:
        finish_failed(run, exc, part, leased)
        raise
    except Exception as exc:
        cause = gpuci_cause(exc)  # a cancel a library wrapped (the Docker SDK, requests)
        if cause is None:
            raise
        finish_failed(run, cause, part, leased)
        raise cause from None
    finally:
        if leased is not None:
            leased.let_go()
        from harness.run.outbox import discard

        discard(run.outbox)
        remove_secrets(getattr(part, "secrets", None))
    return finish(run, code, part, leased)


def _prepare(run: Run, leased: Leased) -> Prepared:
    """The workload made ready by the run's backend, with its part of the report."""
    if run.options.container:
        from harness.run.container.docker import prepare

        return prepare(run, leased.watch)
    from harness.run.host.workload import prepare as prepare_on_host

    return prepare_on_host(run, leased.watch)


def _crashed_containers_remover(options: RunOptions) -> RemoveContainers | None:
    """What clears a crashed run's containers from the GPUs this run leases: the container backend's."""
    if not options.container:
        return None
    from harness.run.container.docker import remove_crashed_containers

    return remove_crashed_containers


def _shell(run: Run, part: ContainerPart, leased: Leased) -> ExitCode:
    """`repro --shell`: a shell in the run's container instead of its step."""
    from harness.console import say
    from harness.run.container.docker import interactive_shell
    from harness.run.finish import finish

    if not run.options.container:
        raise UsageError("--shell opens a shell in the run's container; drop --no-container.")
    say("opening a shell in the run's container (exit it to end the run)")
    code = ExitCode.PASSED if interactive_shell(part.spec) == 0 else ExitCode.TESTS_FAILED
    run.report.outcome = "shell"
    return finish(run, code, part, leased)


def _command_line(args: argparse.Namespace) -> dict[str, Any]:
    """What `run` and `supervise` say of a run besides its settings."""
    return {
        "report_dir": args.report_dir,
        "vram_backend": None if args.vram_backend == "auto" else args.vram_backend,
        "echo": not args.quiet,
    }


def supervise_command(args: argparse.Namespace) -> int:
    from harness.run.command import execute_command

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UsageError("supervise needs a command after --, e.g. `python -m harness supervise -- pytest -x`.")
    num_gpus = args.num_gpus
    if num_gpus is None:
        num_gpus = 1 if args.vram_backend else 0
    from harness.declare.config import host_config
    from harness.declare.settings import from_flags
    from harness.run.options import RunOptions

    # supervise runs any command, not a project's step: its settings are the flags', the environment's
    # and the defaults, never [tool.gpuci]'s.
    config = host_config(from_flags(args))
    options = RunOptions(root=args.root.resolve(), platform=args.platform, config=config, **_command_line(args))
    return execute_command(options, cmd, args.image, num_gpus)
