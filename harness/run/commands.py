"""`gpuci run` and `gpuci supervise`: command-line settings and [tool.gpuci] made into one run's options."""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING

from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.declare.config import ProjectConfig


def run_options(args: argparse.Namespace, platform: str, config: ProjectConfig | None = None, **extra: object):  # type: ignore[no-untyped-def]
    """The options every run takes; with `config`, its settings (the flags already over it)."""
    from harness.run.options import RunOptions
    from harness.run.supervise.stop import DEFAULT_GRACE_S, DEFAULT_VRAM_TIMEOUT_S

    grace = config.grace if config else args.grace
    vram_timeout = config.vram_timeout if config else args.vram_timeout
    return RunOptions(
        root=args.root.resolve(),
        platform=platform,
        report_dir=args.report_dir,
        vram_backend=None if args.vram_backend == "auto" else args.vram_backend,
        grace_s=grace if grace is not None else DEFAULT_GRACE_S,
        vram_timeout_s=vram_timeout if vram_timeout is not None else DEFAULT_VRAM_TIMEOUT_S,
        echo=not args.quiet,
        **extra,  # type: ignore[arg-type]
    )


def run_command(args: argparse.Namespace) -> int:
    from harness.run.cancel import GATE

    GATE.install()  # from here a cancel is noted, never a silent death without a report
    from harness.declare.config import config_with_flags, image_timeout_s, in_checkout
    from harness.images.registry import registry_from
    from harness.run.buildkite.collector import TOKEN_ENV, wanted
    from harness.run.execute import execute_step
    from harness.state import check_state

    check_state(args.root.resolve())  # gpuci's state is never the commit's, nor a link
    config = config_with_flags(args.root.resolve(), args)  # each setting: its flag, else [tool.gpuci]
    options = run_options(
        args,
        args.platform,
        config,
        pytest_args=tuple(args.pytest_args),
        container=not args.no_container,
        base_image=args.base_image,
        python=args.python,
        project_python=config.python[0] if config.python else None,
        # A CA bundle given on the command line is the host's; [tool.gpuci]'s must be in the checkout.
        ca_bundle=args.ca_bundle
        or (in_checkout(args.root, config.ca_bundle, "ca_bundle") if config.ca_bundle else None),
        timeout_s=config.timeout,
        lease_timeout_s=config.lease_timeout if config.lease_timeout is not None else 600.0,
        image_timeout_s=image_timeout_s(config),
        workspace=config.workspace,
        default_working_dir=config.default_working_dir,
        mounts=config.mounts,
        limits=project_limits(config),
        host_mounts=config.host_mounts,
        policy=config.policy,
        # Buildkite's Test Engine token, where set, is a secret of every step (harness.run.buildkite.collector).
        pass_env=(*config.secrets, *args.env, *((TOKEN_ENV,) if wanted() else ())),
        registry=None if args.no_container else registry_from(config),
        build=args.build,
    )
    try:
        return execute_step(options, args.area, args.step)
    finally:
        # The report is final and the exit code decided: a late cancel (Python restores the default
        # handlers while it shuts down) must not turn a written "passed" into a death by SIGTERM.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def project_limits(config):  # type: ignore[no-untyped-def]
    from harness.run.spec import DEFAULT_PIDS_LIMIT, Limits

    return Limits(config.memory, config.cpus, config.pids_limit or DEFAULT_PIDS_LIMIT, config.network)


def supervise_command(args: argparse.Namespace) -> int:
    from harness.run.command import execute_command

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UsageError("supervise needs a command after --, e.g. `python -m harness supervise -- pytest -x`.")
    num_gpus = args.num_gpus
    if num_gpus is None:
        num_gpus = 1 if args.vram_backend else 0
    return execute_command(run_options(args, args.platform), cmd, args.image, num_gpus, args.timeout)
