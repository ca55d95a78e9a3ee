"""What one `gpuci run` (or `repro`) asks, resolved once into a typed `RunRequest`: every setting, the
area's steps that run on the platform (each held against the host's policy), the platform, the stop
policy, the CI job's facts and the variables passed through. The run stage reads it as data: nothing
in it is asked of the declarations again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ci_provider import TEST_ENGINE_TOKEN, CIJob, job
from harness.declare.areas import Step, session_name
from harness.declare.config import ProjectConfig, config_with_flags, image_timeout_s, in_checkout, lease_timeout_s
from harness.declare.mounts import BindMount, project_mounts
from harness.declare.platforms import Platform, get_platform
from harness.declare.pythons import builds_on_local_base
from harness.declare.sources import find_area
from harness.declare.stop_policy import StopPolicy, stop_policy
from harness.declare.within_policy import check_step
from harness.errors import UsageError


@dataclass(frozen=True)
class Asked:
    """What the command line (or a repro's report) names: the platform, the area and maybe one step,
    the image's base and Python, the variables passed by name, and whether the run is in a container."""

    platform: str
    area: str
    step: str | None = None
    python: str | None = None  # --python: over the step's
    base_image: str | None = None
    env_names: tuple[str, ...] = ()  # --env
    container: bool = True


@dataclass(frozen=True)
class StepRequest:
    """One step as it runs here: its declaration, its image's Python, its timeout and stop budget."""

    step: Step
    # The Python its image runs: --python, else the step's; on gpuci's Debian base, else [tool.gpuci]'s first.
    python: str | None
    timeout_s: float | None  # --timeout, else the step's timeout_in_minutes
    budget_s: float  # the step's stop budget on this platform, else the platform's


@dataclass(frozen=True)
class RunRequest:
    config: ProjectConfig
    platform: Platform
    area: str
    session: str  # <platform>_<area>
    steps: tuple[StepRequest, ...]
    stop: StopPolicy
    ci: CIJob
    # Host variables passed through by name: [tool.gpuci] secrets, --env, Test Engine's token where set.
    pass_env: tuple[str, ...] = ()
    # The extra CA bundle as a file: the flag's (a host path) or [tool.gpuci]'s (checked in the checkout).
    ca_bundle: Path | None = None
    cpu_session: str | None = None  # the same tests on the cpu platform, named where a GPU is missing
    # The project's mounts within the host policy, then the host's own (a container's only).
    mounts: tuple[BindMount, ...] = ()


def request_for(root: Path, args: Any) -> RunRequest:
    """`gpuci run`'s request: the settings from the flags, GPUCI_<KEY> and [tool.gpuci] (once), and what
    the command line names."""
    asked = Asked(
        args.platform,
        args.area,
        args.step,
        args.python,
        args.base_image,
        tuple(args.env),
        container=not args.no_container,
    )
    return resolve(root, config_with_flags(root, args), asked)


def resolve(root: Path, config: ProjectConfig, asked: Asked) -> RunRequest:
    """The request, resolved: the steps to run (one, or every non-optional one of the area on the
    platform), each held against the host's policy in a container (host mode trusts the project whole)."""
    image_timeout_s(config)  # bounded before anything runs
    lease_timeout_s(config)
    platform = get_platform(asked.platform)
    area = find_area(root, asked.area, config.declarations)
    steps = (
        [area.step(asked.step, asked.platform)]
        if asked.step
        else [s for s in area.steps_for(asked.platform) if not s.optional]
    )
    if not steps:
        raise UsageError(f"area {area.name!r} has no step that runs on {asked.platform} ({area.path}).")
    mounts: tuple[BindMount, ...] = ()
    if asked.container:
        for step in steps:
            check_step(config.policy, area, step)
        mounts = tuple(project_mounts(config.mounts, root, config.policy, config.host_mounts))
    ci = job()
    token = (TEST_ENGINE_TOKEN,) if ci.test_engine else ()  # a secret of every step (harness.run.buildkite.collector)
    local_base = builds_on_local_base(asked.platform, asked.base_image)
    return RunRequest(
        config,
        platform,
        area.name,
        session_name(asked.platform, area.name),
        tuple(_step_request(config, platform, step, asked.python, local_base) for step in steps),
        stop_policy(float(config.grace), float(config.vram_timeout), ci.cancel_grace_s),
        ci,
        pass_env=tuple(dict.fromkeys((*config.secrets, *asked.env_names, *token))),
        ca_bundle=_ca_bundle(root, config),
        cpu_session=f"nox -s cpu_{area.name}" if "cpu" in area.platforms else None,
        mounts=mounts,
    )


def _step_request(
    config: ProjectConfig, platform: Platform, step: Step, python: str | None, local_base: bool
) -> StepRequest:
    chosen = python or step.python
    timeout = config.timeout or (step.timeout_in_minutes * 60.0 if step.timeout_in_minutes else None)
    return StepRequest(
        step,
        chosen or (config.python[0] if local_base and config.python else None),
        timeout,
        step.shutdown_budget.get(platform.name, platform.shutdown_budget_s),
    )


def _ca_bundle(root: Path, config: ProjectConfig) -> Path | None:
    """The flag's and the variable's are the host's; [tool.gpuci]'s must be the checkout's."""
    if not config.ca_bundle:
        return None
    if config.set_by_project("ca_bundle"):
        return in_checkout(root, config.ca_bundle, "ca_bundle")
    return Path(config.ca_bundle)
