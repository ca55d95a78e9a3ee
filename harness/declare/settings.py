"""Every setting, declared once: its `[tool.gpuci]` key, kind, default, command-line flag, environment
variable (`GPUCI_<KEY>`, as cibuildwheel derives `CIBW_<NAME>`), help, owner and the host policy's rule
that bounds it. `harness.declare.config` reads `[tool.gpuci]` and `harness.declare.precedence` resolves
every setting from this table, and argparse builds the flags from it (nox's `_options.py` keeps its
options the same way): a setting is spelled in one place, and a declared one cannot go unread.

Precedence, for every setting and every command (harness.declare.precedence.resolve): the flag, then
the environment variable, then `[tool.gpuci]`, then the default declared here. The flag and the
environment are the host's word (whoever runs gpuci); `[tool.gpuci]` is the project's, i.e. the pull
request's, and where a setting names a `policy` rule the project's value must keep within the host
policy's (harness.declare.within_policy). A setting owned by the host is never taken from `[tool.gpuci]`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from harness.declare.dependencies import DEPENDENCY_MATCHES
from harness.errors import UsageError

ALL = ("run", "pipeline", "lint")  # the commands that read the project's settings
ENV_PREFIX = "GPUCI_"
DEFAULT_RUN_ALL = ("harness", "containers", ".buildkite", "noxfile.py", "pyproject.toml")


@dataclass(frozen=True)
class Setting:
    key: str  # [tool.gpuci] key and ProjectConfig field
    kind: str  # what the key takes (KIND_WORDS in harness.declare.config)
    help: str
    default: Any = None  # None: unset (the step's own, or no limit); lists as tuples, tables as {}
    flag: str | None = None
    commands: tuple[str, ...] = ()  # the subcommands that take the flag
    metavar: str | None = None
    # Who may set it: "project" ([tool.gpuci], i.e. the pull request) or "host" (the agent's policy,
    # environment and flags only); `policy` names the host policy's rule a project's value must keep within.
    owner: str = "project"
    policy: str | None = None
    # The environment's value is the host's own, kept beside the project's in this field instead of
    # over it (GPUCI_MOUNTS: the agent's folders and the project's both reach the container).
    env_beside: str | None = None

    @property
    def env(self) -> str:
        """The host variable that sets it: GPUCI_ and the key, upper-cased."""
        return ENV_PREFIX + self.key.upper()

    @property
    def dest(self) -> str:
        return (self.flag or "").lstrip("-").replace("-", "_")


RUN = ("run", "repro")  # the commands that run steps
SETTINGS: tuple[Setting, ...] = (
    Setting("workspace", "path", "the checkout's path inside containers", "/workspace", "--workspace", ALL),
    Setting(
        "default_working_dir", "str", "working dir of steps without one (default: the workspace)", None,
        "--default-working-dir", ALL,
    ),
    Setting(
        "declarations", "list", "a pipeline file, folder or glob to read (repeatable; replaces the list)",
        (".buildkite/test_areas",), "--declarations", ("pipeline", "lint"), metavar="PATH[:PLATFORM,...]",
    ),
    Setting(
        "dependency_match", "match", "how source_file_dependencies match changed files", "component",
        "--dependency-match", ("pipeline", "lint"),
    ),
    Setting(
        "dependency_match_for", "modes", "one pipeline file's (or folder's, glob's) match mode (repeatable)", {},
        "--dependency-match-for", ("pipeline", "lint"), metavar="PIPELINE=MODE",
    ),
    Setting(
        "external_scripts", "list", "a script CI runs from outside the pipeline files (repeatable)", (),
        "--external-script", ("pipeline", "lint"), metavar="GLOB",
    ),
    Setting("timeout", "number", "seconds before the step is stopped (default: its own)", None, "--timeout", RUN),
    Setting(
        "grace", "number", "seconds between SIGTERM and SIGKILL, at most the host policy's [limits] grace (60)", 5.0,
        "--grace", (*RUN, "supervise"),
    ),
    Setting(
        "vram_timeout", "number", "seconds to wait for VRAM release", 60.0, "--vram-timeout", (*RUN, "supervise"),
    ),
    Setting(
        "lease_timeout", "number",
        "seconds to wait for GPUs another run holds, at most 3600; a GPU job's timeout adds it", 600.0,
        "--lease-timeout",
        (*RUN, "pipeline"),
    ),
    Setting(
        "image_timeout", "number",
        "seconds an image may take to build or pull, at most 3600; each CI job's timeout adds it", 1200.0,
        "--image-timeout", (*RUN, "pipeline"),
    ),
    Setting("ca_bundle", "str", "extra CA certificates (PEM) baked into the image", None, "--ca-bundle", ("run",)),
    Setting("registry", "registry", "images by digest: HOST[:PORT][/PATH]", policy="registries"),
    Setting(
        "mounts", "mounts", "folders bound into every step's container (the variable's: the host's own, beside them)",
        (), policy="mounts", env_beside="host_mounts",
    ),
    Setting("network", "str", "a Docker network mode for every step's container", policy="networks"),
    Setting("default_branch", "str", "the branch whose builds run every step", "main"),
    Setting("run_all", "list", "paths whose change runs every step", DEFAULT_RUN_ALL),
    Setting("queues", "table", "Buildkite queue per platform or device", {}, policy="queues"),
    Setting("registry_username_env", "str", "the variable holding the registry's user name", owner="host"),
    Setting("registry_password_env", "str", "the variable holding the registry's password", owner="host"),
    Setting("requirements", "list", "the project's requirement files, installed in its images", ()),
    Setting("extras", "list", "[project.optional-dependencies] installed in its images", ()),
    Setting("dependency_groups", "list", "PEP 735 dependency groups installed in its images", ()),
    Setting("memory", "size", "every step container's memory limit", policy="limits.memory"),
    Setting("cpus", "number", "every step container's CPUs", policy="limits.cpus"),
    Setting("pids_limit", "count", "every step container's process limit", 16384, policy="limits.pids"),
    Setting("allow_dangerous_mounts", "bool", "let mounts that give the host away run", False, owner="host"),
    Setting("secrets", "list", "host variables every step gets as secrets", (), policy="env"),
    Setting("install", "install", "the project itself in its images: editable or none", "editable"),
    Setting("python", "pythons", "the Pythons its images run on gpuci's Debian base", ()),
    Setting("system_packages", "packages", "Debian packages its images add, in a layer of their own", {}),
)  # fmt: skip
BY_KEY = {s.key: s for s in SETTINGS}


def default(key: str) -> Any:
    """A setting's declared default: every other module takes it from here."""
    return BY_KEY[key].default


def kinds() -> dict[str, str]:
    """Each [tool.gpuci] key and the kind it takes."""
    return {s.key: s.kind for s in SETTINGS}


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of the settings `command` takes."""
    for setting in SETTINGS:
        if setting.flag is None or command not in setting.commands:
            continue
        said = f"; default {setting.default:g}" if isinstance(setting.default, float) else ""
        kwargs: dict[str, Any] = {
            "help": f"{setting.help} ([tool.gpuci] {setting.key}, {setting.env}{said})",
            "metavar": setting.metavar,
        }
        if setting.kind == "number":
            kwargs["type"] = float
        elif setting.kind == "match":
            kwargs["choices"] = list(DEPENDENCY_MATCHES)
        if setting.kind in ("list", "table", "modes"):
            kwargs["action"] = "append"
        parser.add_argument(setting.flag, **{k: v for k, v in kwargs.items() if v is not None})


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gave, as [tool.gpuci] would write them (lists, tables); a flag
    not given is left out. For harness.declare.precedence.resolve."""
    given: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.flag is None or not hasattr(args, setting.dest):
            continue
        value = getattr(args, setting.dest)
        if setting.kind == "modes":
            value = flag_modes(value)
        if value is not None and value != []:
            given[setting.key] = value
    return given


def flag_modes(entries: list[str] | None) -> dict[str, str] | None:
    """--dependency-match-for PIPELINE=MODE, repeated."""
    if not entries:
        return None
    modes: dict[str, str] = {}
    for entry in entries:
        path, _, mode = entry.rpartition("=")
        if not path or mode not in DEPENDENCY_MATCHES:
            raise UsageError(
                f"--dependency-match-for {entry!r} is not PIPELINE=MODE (MODE: {', '.join(DEPENDENCY_MATCHES)})."
            )
        modes[path] = mode
    return modes
