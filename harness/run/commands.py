"""`gpuci run` and `gpuci supervise`: the settings, resolved once per command, made into one run's options."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.declare.config import ProjectConfig
    from harness.run.options import RunOptions


def run_options(
    config: ProjectConfig, root: Path, platform: str, env_names: tuple[str, ...] = (), **only: Any
) -> RunOptions:
    """A run's options from the settings its command resolved once (`config`), for `run` and `repro`
    alike: the secrets it names and the host variables `env_names` passes, its CA bundle, its registry;
    `only` holds what only the command line says (pytest arguments, --no-container, --build, …)."""
    from harness.declare.config import image_timeout_s, in_checkout, lease_timeout_s
    from harness.images.registry import registry_from
    from harness.run.buildkite.collector import TOKEN_ENV, wanted
    from harness.run.options import RunOptions

    image_timeout_s(config)  # bounded before anything runs
    lease_timeout_s(config)
    ca_bundle = None
    if config.ca_bundle:  # the flag's and the variable's are the host's; [tool.gpuci]'s must be the checkout's
        by_project = config.set_by_project("ca_bundle")
        ca_bundle = in_checkout(root, config.ca_bundle, "ca_bundle") if by_project else Path(config.ca_bundle)
    # Buildkite's Test Engine token, where set, is a secret of every step (harness.run.buildkite.collector).
    token = (TOKEN_ENV,) if wanted() else ()
    return RunOptions(
        root=root,
        platform=platform,
        config=config,
        ca_bundle=ca_bundle,
        pass_env=tuple(dict.fromkeys((*config.secrets, *env_names, *token))),
        registry=registry_from(config) if only.get("container", True) else None,
        **only,
    )


def run_command(args: argparse.Namespace) -> int:
    from harness.run.cancel import GATE

    GATE.install()  # from here a cancel is noted, never a silent death without a report
    from harness.declare.config import config_with_flags
    from harness.run.execute import execute_step
    from harness.state import check_state

    root = args.root.resolve()
    check_state(root)  # gpuci's state is never the commit's, nor a link
    config = config_with_flags(root, args)  # every setting, once: flag, GPUCI_<KEY>, [tool.gpuci], default
    options = run_options(
        config,
        root,
        args.platform,
        tuple(args.env),
        pytest_args=tuple(args.pytest_args),
        container=not args.no_container,
        base_image=args.base_image,
        python=args.python,
        build=args.build,
        **_command_line(args),
    )
    try:
        return execute_step(options, args.area, args.step)
    finally:
        # The report is final and the exit code decided: a late cancel (Python restores the default
        # handlers while it shuts down) must not turn a written "passed" into a death by SIGTERM.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


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
