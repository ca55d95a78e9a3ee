"""Every project setting, declared once: its `[tool.gpuci]` key, kind, command-line flag, environment
variable and help. The config loader checks keys and kinds from this table (but copies each key into
`ProjectConfig` by hand) and argparse builds the flags from it (nox's `_options.py` keeps its options
the same way).

Precedence is applied where each source is read, not by one function: a flag wins over `[tool.gpuci]`
(`ProjectConfig.with_flags`); GPUCI_REGISTRY replaces `registry` and GPUCI_MOUNTS adds the host's mounts
beside `mounts` (`load_config`); GPUCI_NETWORK wins over `network` where a container is made. No setting has both a
flag and a variable. Defaults are `ProjectConfig`'s, but the five timeouts are None there and defaulted
where they are used (the run's options, `image_timeout_s`). Each setting has an owner: the project's may be
set in `[tool.gpuci]`, within the host policy's rule where it reaches the host
(harness.declare.policy); the host's only by the agent (its policy, environment and flags).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.declare.dependencies import DEPENDENCY_MATCHES
from harness.errors import UsageError

ALL = ("run", "pipeline", "lint")  # the commands that read the project's settings


@dataclass(frozen=True)
class Setting:
    key: str  # [tool.gpuci] key and ProjectConfig field
    kind: str  # what the key takes (KIND_WORDS in harness.declare.config)
    help: str
    flag: str | None = None
    commands: tuple[str, ...] = ()  # the subcommands that take the flag
    env: str | None = None  # a host variable that sets it (the flag wins)
    metavar: str | None = None
    # Read from the flag but merged by its command, not over [tool.gpuci] (a host path, not a checkout's).
    merged: bool = True
    # Who may set it: "project" ([tool.gpuci], i.e. the pull request) or "host" (the agent's policy,
    # environment and flags only); `policy` names the host policy's rule a project's value must keep within.
    owner: str = "project"
    policy: str | None = None

    @property
    def dest(self) -> str:
        return (self.flag or "").lstrip("-").replace("-", "_")


SETTINGS: tuple[Setting, ...] = (
    Setting("workspace", "path", "the checkout's path inside containers", "--workspace", ALL),
    Setting("default_working_dir", "str", "working dir of steps without one", "--default-working-dir", ALL),
    Setting(
        "declarations", "list", "a pipeline file, folder or glob to read (repeatable; replaces the list)",
        "--declarations", ("pipeline", "lint"), metavar="PATH[:PLATFORM,...]",
    ),
    Setting(
        "dependency_match", "match", "how source_file_dependencies match changed files",
        "--dependency-match", ("pipeline", "lint"),
    ),
    Setting(
        "dependency_match_for", "table", "one pipeline file's (or folder's, glob's) match mode (repeatable)",
        "--dependency-match-for", ("pipeline", "lint"), metavar="PIPELINE=MODE",
    ),
    Setting(
        "external_scripts", "list", "a script CI runs from outside the pipeline files (repeatable)",
        "--external-script", ("pipeline", "lint"), metavar="GLOB",
    ),
    Setting("timeout", "number", "seconds before the step is stopped (default: its own)", "--timeout", ("run",)),
    Setting("grace", "number", "seconds between SIGTERM and SIGKILL (default 5)", "--grace", ("run", "supervise")),
    Setting(
        "vram_timeout", "number", "seconds to wait for VRAM release (default 60)", "--vram-timeout",
        ("run", "supervise"),
    ),
    Setting(
        "lease_timeout", "number", "seconds to wait for GPUs another run holds (default 600)", "--lease-timeout",
        ("run",),
    ),
    Setting(
        "image_timeout", "number",
        "seconds an image may take to build or pull, at most 3600 (default 1200); each CI job's timeout adds it",
        "--image-timeout", ("run", "pipeline"),
    ),
    Setting(
        "ca_bundle", "str", "extra CA certificates (PEM) baked into the image", "--ca-bundle", ("run",),
        merged=False,
    ),
    Setting("registry", "str", "images by digest: HOST[:PORT][/PATH]", env="GPUCI_REGISTRY", policy="registries"),
    Setting("mounts", "list", "folders bound into every step's container", env="GPUCI_MOUNTS", policy="mounts"),
    Setting("network", "str", "a Docker network mode for every step's container", policy="networks"),
    Setting("default_branch", "str", "the branch whose builds run every step"),
    Setting("run_all", "list", "paths whose change runs every step"),
    Setting("queues", "table", "Buildkite queue per platform or device", policy="queues"),
    Setting("registry_username_env", "str", "the variable holding the registry's user name", owner="host"),
    Setting("registry_password_env", "str", "the variable holding the registry's password", owner="host"),
    Setting("requirements", "list", "the project's requirement files, installed in its images"),
    Setting("extras", "list", "[project.optional-dependencies] installed in its images"),
    Setting("dependency_groups", "list", "PEP 735 dependency groups installed in its images"),
    Setting("memory", "size", "every step container's memory limit", policy="limits.memory"),
    Setting("cpus", "number", "every step container's CPUs", policy="limits.cpus"),
    Setting("pids_limit", "count", "every step container's process limit", policy="limits.pids"),
    Setting("allow_dangerous_mounts", "bool", "let mounts that give the host away run", owner="host"),
    Setting("secrets", "list", "host variables every step gets as secrets", policy="env"),
    Setting("install", "install", "the project itself in its images: editable or none"),
    Setting("python", "pythons", "the Pythons its images run on gpuci's Debian base"),
    Setting("system_packages", "packages", "Debian packages its images add, in a layer of their own"),
)  # fmt: skip
BY_KEY = {s.key: s for s in SETTINGS}


def kinds() -> dict[str, str]:
    """Each [tool.gpuci] key and the kind it takes."""
    return {s.key: s.kind for s in SETTINGS}


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of the settings `command` takes."""
    for setting in SETTINGS:
        if setting.flag is None or command not in setting.commands:
            continue
        kwargs: dict[str, Any] = {"help": f"{setting.help} ([tool.gpuci] {setting.key})", "metavar": setting.metavar}
        if setting.kind == "number":
            kwargs["type"] = float
        elif setting.kind == "match":
            kwargs["choices"] = list(DEPENDENCY_MATCHES)
        elif setting.key == "ca_bundle":
            kwargs["type"] = Path
        if setting.kind in ("list", "table"):
            kwargs["action"] = "append"
        parser.add_argument(setting.flag, **{k: v for k, v in kwargs.items() if v is not None})


def from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gave (None: not given), in ProjectConfig's form, for
    `ProjectConfig.with_flags`."""
    given: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.flag is None or not setting.merged or not hasattr(args, setting.dest):
            continue
        value = getattr(args, setting.dest)
        if setting.key == "dependency_match_for":
            value = flag_modes(value)
        elif setting.kind == "list" and value is not None:
            value = tuple(value) or None
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
