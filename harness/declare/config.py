"""Every setting of a command, resolved once into a `ProjectConfig`: from its flag, its `GPUCI_<KEY>`
variable, `[tool.gpuci]` in pyproject.toml or its declared default (harness.declare.settings). For example:

[tool.gpuci]
workspace = "/workspace"                  # the checkout's path inside containers
default_working_dir = "/workspace"        # where steps without working_dir run
default_branch = "main"
run_all = ["harness", "containers", ".buildkite", "noxfile.py", "pyproject.toml"]
registry = "registry.example.com:5000/ci"  # images by digest (GPUCI_REGISTRY overrides); the host
                                          # policy must list it, and names its credentials
requirements = ["requirements-test.txt"] # the project's own, installed in its images
declarations = [".buildkite/test_areas", ".buildkite/test-amd.yaml:rocm"]  # pipeline files read
mounts = ["models:/models:ro"]            # folders in every container: the checkout's, or host
                                          # folders the host policy grants
dependency_match = "component"            # or "substring", as the project's generator matches
[tool.gpuci.queues]                       # Buildkite queue per device class or platform (the
                                          # host policy's queues, or ones it allows)
h100 = "gpu-h100"
mi325_1 = "amd-mi325"
cpu = "cpu"
build = "build"                           # where image steps run (registry only)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.declare import settings as declared
from harness.declare.kinds import KIND_WORDS
from harness.declare.policy import HostPolicy, load_policy
from harness.declare.precedence import resolve
from harness.declare.pyproject import Pyproject, read_pyproject
from harness.declare.settings import BY_KEY, default, kinds
from harness.errors import UsageError

__all__ = ["KIND_WORDS", "ProjectConfig", "config_with_flags", "image_timeout_s", "in_checkout", "lease_timeout_s",
           "load_config"]  # fmt: skip

DEFAULT_RUN_ALL = default("run_all")
REGISTRY_ENV = BY_KEY["registry"].env
MOUNTS_ENV = BY_KEY["mounts"].env


def _default(key: str) -> Any:
    """The default of a setting's field: its declaration's (harness.declare.settings); tables are
    made afresh for each config instead."""
    return default(key)


@dataclass(frozen=True)
class ProjectConfig:
    """Every setting, resolved (harness.declare.precedence): one field a setting, its default the
    declared one. `load_config` makes it once per command, and the command hands it on."""

    workspace: str = _default("workspace")
    default_working_dir: str | None = _default("default_working_dir")
    default_branch: str = _default("default_branch")
    run_all: tuple[str, ...] = _default("run_all")
    # The queues the project asks for, per device or platform: only those the host policy allows.
    queues: dict[str, str] = field(default_factory=lambda: dict(default("queues")))
    registry: str | None = _default("registry")
    registry_username_env: str | None = _default("registry_username_env")
    registry_password_env: str | None = _default("registry_password_env")
    # The project's own requirement or lock files, installed in its images and part of their content tag.
    requirements: tuple[str, ...] = _default("requirements")
    # Its [project.optional-dependencies] and PEP 735 [dependency-groups] installed there too.
    extras: tuple[str, ...] = _default("extras")
    dependency_groups: tuple[str, ...] = _default("dependency_groups")
    # Pipeline files, folders or globs (PATH or PATH:PLATFORM,...): see harness.declare.sources.
    declarations: tuple[str, ...] = _default("declarations")
    # Folders bound into every step's container (SOURCE:TARGET[:ro]): model caches, a toolchain the
    # host provides; a host folder only where the host policy grants it.
    mounts: tuple[str, ...] = _default("mounts")
    # How source_file_dependencies match changed files, as the project's generator does it.
    dependency_match: str = _default("dependency_match")
    # Scripts CI runs from outside the pipeline files (a generator's own hardware jobs): globs. The
    # lint counts what they run as run.
    external_scripts: tuple[str, ...] = _default("external_scripts")
    # Pipeline file, folder or glob -> its generator's match mode, where it differs from dependency_match.
    dependency_match_for: dict[str, str] = field(default_factory=lambda: dict(default("dependency_match_for")))
    # Every step container's limits unless the step sets its own (memory in Docker's form, 16g).
    memory: str | None = _default("memory")
    cpus: float | None = _default("cpus")
    pids_limit: int = _default("pids_limit")
    network: str | None = _default("network")
    # Mounts that give the host away (the Docker socket, /, /etc, a parent of the checkout) run only
    # with this set, or with `:dangerous` on the entry itself.
    allow_dangerous_mounts: bool = _default("allow_dangerous_mounts")
    # Host variables every step gets as secrets: masked by value, never in the container's configuration.
    secrets: tuple[str, ...] = _default("secrets")
    # Seconds: the step's timeout (None: its own), the stop's grace, the wait for VRAM, for a lease, and
    # for the image (image_timeout_s bounds it); a CA bundle (the project's must be in its checkout).
    timeout: float | None = _default("timeout")
    grace: float = _default("grace")
    vram_timeout: float = _default("vram_timeout")
    lease_timeout: float = _default("lease_timeout")
    image_timeout: float = _default("image_timeout")
    ca_bundle: str | None = _default("ca_bundle")
    # The project itself in its images: "editable" (its metadata and entry points installed, its code
    # the mounted checkout's) or "none".
    install: str = _default("install")
    # The Pythons its images run on gpuci's Debian base (harness.declare.pythons); several: a
    # session each (`cpu_<area>-3.13`). Empty: the base's default.
    python: tuple[str, ...] = _default("python")
    # Debian packages its images add in a layer of their own (harness.images.system_layer): "all"
    # platforms' and each platform's, from a list (every platform) or a table by platform.
    system_packages: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(default("system_packages")))

    # Host folders the agent binds into every container (GPUCI_MOUNTS): the host's, not the project's.
    host_mounts: tuple[str, ...] = ()
    # Where the project set each value it set ("pyproject.toml:12"): the host policy names it in a
    # refusal. A value a flag or the agent's environment gave is the host's and has no origin here.
    origins: dict[str, str] = field(default_factory=dict, compare=False)
    # The agent's policy the project's asks were checked against (harness.declare.policy).
    policy: HostPolicy = field(default_factory=HostPolicy, compare=False)
    # The pyproject.toml these were read from, as read (None: there is none): the image stage reads
    # the project's metadata and dependency lists from it instead of reading the file again.
    pyproject: Pyproject | None = field(default=None, compare=False, repr=False)

    def set_by_project(self, key: str) -> bool:
        return key in self.origins

    def packages_for(self, platform: str) -> tuple[str, ...]:
        return (*self.system_packages.get("all", ()), *self.system_packages.get(platform, ()))

    @property
    def working_dir(self) -> str:
        return self.default_working_dir or self.workspace

    @property
    def pyproject_data(self) -> dict[str, Any]:
        return self.pyproject.data if self.pyproject else {}

    def queue_for(self, device: str | None, platform: str) -> str:
        """The project's ask for the device or platform, else the host's queue for it."""
        for name in (device, platform):
            if name and name in self.queues:
                return self.queues[name]
        return self.policy.queue_for(device, platform)


# Each key of [tool.gpuci] and the kind of value it takes: declared once, in harness.declare.settings.
KINDS: dict[str, str] = kinds()


def load_config(
    root: Path,
    *,
    for_host: bool = True,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> ProjectConfig:
    """Every setting of a command, resolved once (harness.declare.precedence): `flags` (as
    `settings.from_flags` gives them), then the `GPUCI_<KEY>` variables of `environ`, then `root`'s
    [tool.gpuci], then the declared defaults; the project's values are then checked against the
    agent's policy: the project asks, the host allows. `for_host=False` reads only (the lint, the
    list of sessions): the policy is neither read nor held against the project then."""
    from harness.declare.within_policy import check_config

    pyproject = read_pyproject(Path(root))
    section = pyproject.tool_gpuci() if pyproject else {}
    known = sorted(s.key for s in declared.SETTINGS)
    unknown = sorted(set(section) - set(known))
    if unknown:
        assert pyproject is not None
        raise UsageError(
            f"{pyproject.path}:{pyproject.line_of(unknown[0])}: [tool.gpuci] has unknown keys {unknown}; "
            f"known: {known}."
        )
    origins = {key: f"{pyproject.path}:{pyproject.line_of(key)}" for key in section} if pyproject else {}
    resolved = resolve(flags or {}, environ, section, origins, declared.SETTINGS)
    unread = sorted(set(resolved.values) - config_fields())
    if unread:  # gpuci's own mistake, caught by its tests: a declared setting nothing would read
        raise RuntimeError(f"settings {unread} are declared but ProjectConfig has no field for them; add one each")
    config = ProjectConfig(**resolved.values, origins=resolved.origins, pyproject=pyproject)
    if not for_host:
        return config
    policy = load_policy(Path(root))
    check_config(config, policy)
    if config.allow_dangerous_mounts:  # GPUCI_ALLOW_DANGEROUS_MOUNTS: the host's own opt-in, as its policy's
        policy = replace(policy, allow_dangerous_mounts=True)
    return replace(config, policy=policy)


def host_config(flags: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> ProjectConfig:
    """The settings of a command that runs no project's step (`supervise`): flags, then the
    environment, then the defaults; no pyproject.toml is read."""
    resolved = resolve(flags, environ, {}, {}, declared.SETTINGS)
    return ProjectConfig(**resolved.values)


def config_fields() -> frozenset[str]:
    """ProjectConfig's fields that settings fill: a declared setting without one fails `load_config`."""
    return frozenset(f.name for f in fields(ProjectConfig)) - {"origins", "policy", "pyproject"}


# An image's time: what a cold agent may spend building or pulling before the run gives up (exit 75,
# retried), and the wait for GPUs another run holds: each CI job's timeout adds both to its step's.
# Bounded, so a pull request cannot make its jobs run for days.
IMAGE_TIMEOUT_MAX_S = 3600.0
LEASE_TIMEOUT_MAX_S = 3600.0


def image_timeout_s(config: ProjectConfig) -> float:
    return _bounded(
        config, "image_timeout", IMAGE_TIMEOUT_MAX_S,
        "publish the image once (`gpuci image publish`) and pull it, or lower the setting.",
    )  # fmt: skip


def lease_timeout_s(config: ProjectConfig) -> float:
    return _bounded(
        config, "lease_timeout", LEASE_TIMEOUT_MAX_S,
        "give the GPUs' queue more agents or fewer steps at once (concurrency), or lower the setting.",
    )  # fmt: skip


def _bounded(config: ProjectConfig, key: str, maximum: float, fix: str) -> float:
    value = float(getattr(config, key))
    if value > maximum:
        setting = BY_KEY[key]
        raise UsageError(
            f"{key} ([tool.gpuci], {setting.env} or {setting.flag}) is {value:g} seconds; at most {maximum:g} "
            f"(an hour) is taken: {fix}"
        )
    return value


def config_with_flags(root: Path, args: Any, *, for_host: bool = True) -> ProjectConfig:
    """`load_config` with the command line's settings (harness.declare.settings.from_flags) first."""
    from harness.declare.settings import from_flags

    return load_config(root, for_host=for_host, flags=from_flags(args))


def in_checkout(root: Path, name: str, key: str) -> Path:
    """A file `[tool.gpuci] key` names: in the checkout once links are followed. The setting is the pull
    request's, and gpuci reads the file on the host (a requirement file, a CA bundle baked into the
    image): `../../etc/shadow` or a link to it would carry a host file into a log or an image."""
    path = Path(root) / name
    inside = Path(root).resolve()
    if not path.resolve().is_relative_to(inside):
        raise UsageError(
            f"{Path(root) / 'pyproject.toml'}: [tool.gpuci] {key} names {name!r}, which is outside the checkout "
            "(or a link out of it); name a file of the checkout."
        )
    return path
