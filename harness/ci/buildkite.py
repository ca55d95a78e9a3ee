"""The Buildkite pipeline, generated from the same declarations that make the nox sessions.

Each command step calls the agent's installed `gpuci` (`gpuci run --platform P --area A --step
LABEL`): the command a developer's `nox -s <platform>_<area> -- --step LABEL` runs in-process, so
local and CI runs cannot drift, yet the agent never runs the checkout's noxfile or imports its
modules (DESIGN.md, "Trust boundary"). Every string that reaches the YAML has its `$` doubled, so the
uploading agent interpolates none of the declarations' `${VAR}` or `$VAR`. On a branch, a step whose
`source_file_dependencies` no changed file touches becomes a block step the user can unblock.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.console import say
from harness.declare.areas import Area, Step
from harness.declare.config import ProjectConfig, image_timeout_s, lease_timeout_s
from harness.declare.dependencies import matches, mode_for, touches
from harness.declare.pythons import builds_on_local_base

__all__ = ["Selection", "changed_files", "escape_interpolation", "generate", "matches", "to_yaml", "touches"]
from harness.errors import ExitCode, UsageError
from harness.git import run_git

ARTIFACTS = ".gpuci/runs/**/*"
# Infrastructure failures and lost agents are retried; test failures (1) and teardown failures
# (3, counted apart by their own exit status) are not.
AUTOMATIC_RETRY = [
    {"exit_status": int(ExitCode.INFRASTRUCTURE), "limit": 2},
    {"exit_status": -1, "limit": 2},
]
_KEY_CHARS = re.compile(r"[^a-zA-Z0-9_\-:.,]+")


@dataclass(frozen=True)
class Selection:
    """Which steps run: everything, or those a changed file touches."""

    changed: tuple[str, ...] | None  # None: run everything (default branch, nightly, --all)
    include_optional: bool = False
    run_all: tuple[str, ...] = ()
    dependency_match: str = "component"
    dependency_match_for: dict[str, str] = field(default_factory=dict)  # per pipeline file

    def runs(self, step: Step, pipeline_file: Path | None = None) -> bool:
        if step.optional and not self.include_optional:
            return False
        if self.changed is None:
            return True
        if any(matches(path, pattern) for path in self.changed for pattern in self.run_all):
            return True
        mode = self.dependency_match
        if pipeline_file is not None:
            mode = mode_for(pipeline_file, mode, self.dependency_match_for)
        return any(touches(path, step.source_file_dependencies, mode) for path in self.changed)


def changed_files(root: Path, base: str) -> tuple[str, ...]:
    """Files changed on this branch: a diff against the merge base with `base`."""

    def git(*args: str) -> str:
        done = run_git(root, *args)
        if done.returncode != 0:
            raise UsageError(f"git {' '.join(args)} failed: {done.stderr.strip()}; is {base!r} fetched?")
        return done.stdout

    merge_base = git("merge-base", base, "HEAD").strip()
    return tuple(line for line in git("diff", "--name-only", merge_base, "HEAD").splitlines() if line)


def step_key(step: Step, area: Area, platform: str) -> str:
    """Stable across runs: the declared key (suffixed off its first platform), else from the label."""
    if step.key:
        base = step.key if platform == step.platforms[0] else f"{step.key}-{platform}"
    else:
        base = f"{platform}-{area.name}-{step.label}"
    return _KEY_CHARS.sub("-", base).strip("-").lower()[:100]


# The console command every agent has installed: never the checkout's noxfile, never `python -m`.
AGENT_COMMAND = "gpuci"


def _command(area: Area, step: Step, platform: str, python: str | None = None) -> str:
    words = [AGENT_COMMAND, "run", "--platform", platform, "--area", area.name, "--step", step.label]
    if python:
        words += ["--python", python]
    return shlex.join(words)


def escape_interpolation(value: Any) -> Any:
    """`value` with every `$` of every string (keys too) doubled: Buildkite's agent interpolates
    `$VAR` and `${VAR}` in a pipeline it uploads, and `$$` is its escape for one literal `$`."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {escape_interpolation(k): escape_interpolation(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_interpolation(v) for v in value]
    return value


def pythons_of(step: Step, platform: str, config: ProjectConfig) -> tuple[str | None, ...]:
    """The Pythons a step runs on, a job each: [tool.gpuci] python's versions where there are several,
    the platform builds on gpuci's Debian base and the step chose none; else one job."""
    if step.python or len(config.python) < 2 or not builds_on_local_base(platform):
        return (None,)
    return config.python


# The minutes a job adds to its step's timeout besides the image's: the stop (grace, the VRAM release
# wait) and the report.
STOP_MINUTES = 2


def job_timeout_minutes(step_minutes: int, config: ProjectConfig, num_gpus: int) -> int:
    """The job's timeout: the step's, plus the image's time and, for a step that leases GPUs, the wait
    for GPUs another run holds (each bounded: image_timeout_s, lease_timeout_s), plus the stop. A cold
    agent builds or pulls the image, and waits for its lease, before the step's clock starts."""
    lease_s = lease_timeout_s(config) if num_gpus > 0 else 0.0
    return step_minutes + math.ceil(image_timeout_s(config) / 60) + math.ceil(lease_s / 60) + STOP_MINUTES


def _depends_on(step: Step, platform: str, keys_by_declared: dict[str, set[str]]) -> list[Any]:
    deps: list[Any] = []
    for dep in step.depends_on:
        # A dependency on a step that also runs on this platform means its form on this platform.
        key = f"{dep}-{platform}" if platform in keys_by_declared.get(dep, set()) - {"primary"} else dep
        deps.append({"step": key, "allow_failure": True} if dep in step.allow_failure_of else key)
    return deps


@dataclass(frozen=True)
class Placement:
    """Where one command step sits in the pipeline: its key, what it waits for, its image's Python."""

    key: str
    deps: list[Any]
    python: str | None = None


def command_step(area: Area, step: Step, platform: str, config: ProjectConfig, placement: Placement) -> dict:
    key, deps, python = placement.key, placement.deps, placement.python
    effective = step.on(platform)
    agents = {"queue": config.queue_for(effective.device, platform), **effective.agent_tags}
    out: dict[str, Any] = {
        "label": f"{step.label} ({platform}{f', Python {python}' if python else ''})",
        "key": key,
        "command": _command(area, step, platform, python),
        "agents": agents,
        "artifact_paths": [ARTIFACTS],
        "retry": {
            "automatic": [dict(rule) for rule in AUTOMATIC_RETRY],
            "manual": {"permit_on_passed": True},
        },
        "env": {"GPUCI_PLATFORM": platform},
    }
    if effective.timeout_in_minutes:
        out["timeout_in_minutes"] = job_timeout_minutes(effective.timeout_in_minutes, config, effective.num_gpus)
    if effective.parallelism > 1:
        out["parallelism"] = effective.parallelism
    if effective.concurrency:
        out["concurrency"] = effective.concurrency
        # Buildkite's groups span the organisation: a declared one is kept under gpuci's prefix, so a pull
        # request cannot take a slot of a group outside gpuci's (a deploy's, say).
        group = effective.concurrency_group or key
        out["concurrency_group"] = group if group.startswith("gpuci/") else f"gpuci/{group}"
    if effective.soft_fail:
        out["soft_fail"] = True
    if deps:
        out["depends_on"] = deps
    return out


def generate(areas: list[Area], config: ProjectConfig, selection: Selection) -> dict[str, Any]:
    """The pipeline as a dict, ready for YAML: a group per area, a step per step and platform."""
    declared: dict[str, set[str]] = {}
    for area in areas:
        for step in area.steps:
            if step.key:
                declared[step.key] = {"primary", *step.platforms[1:]}
    used: set[str] = set()
    groups = []
    for area in areas:
        steps: list[dict[str, Any]] = []
        for step in area.steps:
            for platform in step.platforms:
                key = step_key(step, area, platform)
                while key in used:  # two labels that slug alike: keep both, deterministically
                    key = f"{key}-x"[:100]
                used.add(key)
                effective = step.on(platform)
                deps = _depends_on(effective, platform, declared)
                if not selection.runs(effective, area.path):
                    why = "optional" if effective.optional else "no changed file touches it"
                    steps.append(
                        {
                            "block": f"Run {step.label} ({platform})?",
                            "key": f"block-{key}"[:100],
                            "prompt": f"Skipped: {why}. Unblock to run it.",
                        }
                    )
                    deps = [f"block-{key}"[:100], *deps]
                pythons = pythons_of(effective, platform, config)
                for python in pythons:
                    versioned = key if python is None else f"{key}-py{python.replace('.', '-')}"[:100]
                    steps.append(command_step(area, step, platform, config, Placement(versioned, deps, python)))
        if steps:
            groups.append({"group": area.group, "key": f"area-{_KEY_CHARS.sub('-', area.name)}"[:100], "steps": steps})
    if config.registry:
        groups = _with_image_steps(groups, config)
    _drop_unknown_dependencies(groups)
    return {"steps": escape_interpolation(groups)}


def image_key(platform: str) -> str:
    return f"image-{platform}"


def _with_image_steps(groups: list[dict[str, Any]], config: ProjectConfig) -> list[dict[str, Any]]:
    """One image step per platform the pipeline runs: it publishes the image once, every test step
    of that platform depends on it and pulls the same bytes instead of building its own."""
    platforms: list[str] = []
    for group in groups:
        for step in group["steps"]:
            platform = (step.get("env") or {}).get("GPUCI_PLATFORM")
            if platform:
                step["depends_on"] = [image_key(platform), *step.get("depends_on", [])]
                if platform not in platforms:
                    platforms.append(platform)
    image_steps = [
        {
            "label": f":docker: image {platform}",
            "key": image_key(platform),
            "command": shlex.join([AGENT_COMMAND, "image", "publish", "--platform", platform]),
            "agents": {"queue": config.queue_for(None, "build")},
            "retry": {"automatic": [dict(rule) for rule in AUTOMATIC_RETRY]},
            "env": {"GPUCI_PLATFORM": platform},
        }
        for platform in platforms
    ]
    if not image_steps:
        return groups
    return [{"group": "Images", "key": "gpuci-images", "steps": image_steps}, *groups]


def _key(dependency: Any) -> str:
    return dependency["step"] if isinstance(dependency, dict) else dependency


def _drop_unknown_dependencies(groups: list[dict[str, Any]]) -> None:
    """Buildkite refuses a pipeline whose steps depend on keys it lacks (a step of another pipeline)."""
    keys = {step["key"] for group in groups for step in group["steps"]}
    for group in groups:
        for step in group["steps"]:
            if "depends_on" not in step:
                continue
            missing = [_key(d) for d in step["depends_on"] if _key(d) not in keys]
            if missing:
                say(f"{step['key']}: depends on {', '.join(missing)}, which this pipeline lacks; dropped")
            step["depends_on"] = [d for d in step["depends_on"] if _key(d) in keys]
            if not step["depends_on"]:
                del step["depends_on"]


def to_yaml(pipeline: dict[str, Any]) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(pipeline, Dumper=dumper, sort_keys=False, width=120)
