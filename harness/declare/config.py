"""Project configuration: `[tool.gpuci]` in pyproject.toml; the keys with a command-line flag take it too
(harness.declare.settings says which).

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

import math
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.declare.dependencies import DEPENDENCY_MATCHES
from harness.declare.platforms import platform_names
from harness.declare.policy import HostPolicy, load_policy
from harness.declare.pythons import SUITES
from harness.declare.settings import BY_KEY, from_flags, kinds
from harness.errors import UsageError
from harness.untrusted import Refused, parse_toml, project_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_RUN_ALL = ("harness", "containers", ".buildkite", "noxfile.py", "pyproject.toml")
REGISTRY_ENV = str(BY_KEY["registry"].env)
MOUNTS_ENV = str(BY_KEY["mounts"].env)
# HOST[:PORT][/PATH], as Docker spells a repository's prefix (lowercase path components).
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")  # Debian's form: nothing a shell reads as more
# A system_packages table is keyed by platform (harness.declare.platforms), or `all`.
PACKAGE_TABLE_KEY_ALL = "all"
REGISTRY_FORMAT = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


@dataclass(frozen=True)
class ProjectConfig:
    workspace: str = "/workspace"
    default_working_dir: str | None = None
    default_branch: str = "main"
    run_all: tuple[str, ...] = DEFAULT_RUN_ALL
    # The queues the project asks for, per device or platform: only those the host policy allows.
    queues: dict[str, str] = field(default_factory=dict)
    registry: str | None = None
    registry_username_env: str | None = None
    registry_password_env: str | None = None
    # The project's own requirement or lock files, installed in its images and part of their content tag.
    requirements: tuple[str, ...] = ()
    # Its [project.optional-dependencies] and PEP 735 [dependency-groups] installed there too.
    extras: tuple[str, ...] = ()
    dependency_groups: tuple[str, ...] = ()
    # Pipeline files, folders or globs (PATH or PATH:PLATFORM,...): see harness.declare.sources.
    declarations: tuple[str, ...] = (".buildkite/test_areas",)
    # Host folders bound into every step's container (SOURCE:TARGET[:ro]): model caches, a
    # toolchain the host provides. GPUCI_MOUNTS (comma-separated) adds to them.
    mounts: tuple[str, ...] = ()
    # How source_file_dependencies match changed files, as the project's generator does it.
    dependency_match: str = "component"
    # Scripts CI runs from outside the pipeline files (a generator's own hardware jobs): globs. The
    # lint counts what they run as run.
    external_scripts: tuple[str, ...] = ()
    # Pipeline file, folder or glob -> its generator's match mode, where it differs from dependency_match.
    dependency_match_for: dict[str, str] = field(default_factory=dict)
    # Every step container's limits unless the step sets its own (memory in Docker's form, 16g).
    memory: str | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    network: str | None = None
    # Mounts that give the host away (the Docker socket, /, /etc, a parent of the checkout) run only
    # with this set, or with `:dangerous` on the entry itself.
    allow_dangerous_mounts: bool = False
    # Host variables every step gets as secrets: masked by value, never in the container's configuration.
    secrets: tuple[str, ...] = ()
    # Run settings a command line may also give (the flag wins): seconds, and a CA bundle in the checkout.
    timeout: float | None = None
    grace: float | None = None
    vram_timeout: float | None = None
    lease_timeout: float | None = None
    # Seconds an image may take to build or pull (harness.declare.config.image_timeout_s bounds it).
    image_timeout: float | None = None
    ca_bundle: str | None = None
    # The project itself in its images: "editable" (its metadata and entry points installed, its code
    # the mounted checkout's) or "none".
    install: str = "editable"
    # The Pythons its images run on gpuci's Debian base (harness.declare.pythons); several: a
    # session each (`cpu_<area>-3.13`). Empty: the base's default.
    python: tuple[str, ...] = ()
    # Debian packages its images add in a layer of their own (harness.images.system_layer): "all"
    # platforms' and each platform's, from a list (every platform) or a table by platform.
    system_packages: dict[str, tuple[str, ...]] = field(default_factory=dict)

    # Host folders the agent binds into every container (GPUCI_MOUNTS): the host's, not the project's.
    host_mounts: tuple[str, ...] = ()
    # Where the project set each key it set ("pyproject.toml:12"): the host policy names it in a refusal.
    # A key the command line or the agent's environment set is the host's and has no origin here.
    origins: dict[str, str] = field(default_factory=dict, compare=False)
    # The agent's policy the project's asks were checked against (harness.declare.policy).
    policy: HostPolicy = field(default_factory=HostPolicy, compare=False)

    def set_by_project(self, key: str) -> bool:
        return key in self.origins

    def packages_for(self, platform: str) -> tuple[str, ...]:
        return (*self.system_packages.get("all", ()), *self.system_packages.get(platform, ()))

    @property
    def working_dir(self) -> str:
        return self.default_working_dir or self.workspace

    def queue_for(self, device: str | None, platform: str) -> str:
        """The project's ask for the device or platform, else the host's queue for it."""
        for name in (device, platform):
            if name and name in self.queues:
                return self.queues[name]
        return self.policy.queue_for(device, platform)

    def with_flags(self, **flags: Any) -> ProjectConfig:
        """Command-line flags win over pyproject.toml; None means not given. A flag is the host's word."""
        given = {k: v for k, v in flags.items() if v is not None}
        return replace(self, **given, origins={k: v for k, v in self.origins.items() if k not in given})


# Each key of [tool.gpuci] and the kind of value it takes: declared once, in harness.declare.settings.
KINDS: dict[str, str] = kinds()
KIND_WORDS = {
    "path": "an absolute path of letters, digits and . _ - / (a string starting with /)",
    "str": "a string",
    "list": "a list of strings",
    "table": 'a table of strings ([tool.gpuci.queues] name = "queue")',
    "match": '"component", "substring" or "prefix"',
    "install": '"editable" or "none"',
    "pythons": f"a Python version or a list of them, each one of {', '.join(SUITES)}",
    "size": 'a size in Docker\'s form ("16g", "512m")',
    "number": "a number greater than 0",
    "count": "a whole number greater than 0",
    "bool": "true or false",
    "packages": "a list of Debian package names, or a table of them by platform ([tool.gpuci.system_packages] "
    'all = ["libfoo-dev"], cuda = […])',
}


def load_config(root: Path, *, for_host: bool = True) -> ProjectConfig:
    """[tool.gpuci] of `root`, checked against the agent's policy: the project asks, the host allows.
    `for_host=False` reads it only (the lint, the list of sessions): nothing of the host is used then."""
    from harness.declare.within_policy import check_config

    config = _read_config(Path(root))
    if not for_host:
        return config
    policy = load_policy(Path(root))
    check_config(config, policy)
    return replace(config, policy=policy)


def _read_config(root: Path) -> ProjectConfig:
    path = root / "pyproject.toml"
    host_registry = _registry(Path(REGISTRY_ENV), os.environ.get(REGISTRY_ENV))
    host_mounts = _mounts(Path(MOUNTS_ENV), [m for m in os.environ.get(MOUNTS_ENV, "").split(",") if m.strip()])
    if not path.exists():
        return replace(ProjectConfig(), registry=host_registry, host_mounts=host_mounts)
    try:
        text = project_text(path, Path(root))
        data = parse_toml(text, path)
    except Refused as exc:
        raise UsageError(f"{exc}; pyproject.toml must be a regular file of the checkout, at most 2 MiB.") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: is not UTF-8 text; save it as UTF-8.") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: is not valid TOML ({exc}); fix it or remove [tool.gpuci].") from None
    tool = data.get("tool", {})
    section = tool.get("gpuci", {}) if isinstance(tool, dict) else {}
    if not isinstance(section, dict):
        raise UsageError(f"{path}:{_line(text, 'gpuci')}: tool.gpuci must be a table ([tool.gpuci]).")
    unknown = sorted(set(section) - set(KINDS))
    if unknown:
        raise UsageError(
            f"{path}:{_line(text, unknown[0])}: [tool.gpuci] has unknown keys {unknown}; known: {sorted(KINDS)}."
        )
    for key, value in section.items():
        if not _is(KINDS[key], value):
            raise UsageError(
                f"{path}:{_line(text, key)}: [tool.gpuci] {key} must be {KIND_WORDS[KINDS[key]]}, not {value!r}."
            )
    config = ProjectConfig()
    queues = {str(k): str(v) for k, v in section.get("queues", {}).items()}
    origins = {key: f"{path}:{_line(text, key)}" for key in section}
    if host_registry:  # the agent's GPUCI_REGISTRY wins, and is the host's
        origins.pop("registry", None)
    return replace(
        config,
        workspace=str(section.get("workspace", config.workspace)),
        default_working_dir=section.get("default_working_dir"),
        default_branch=str(section.get("default_branch", config.default_branch)),
        run_all=tuple(section.get("run_all", config.run_all)),
        queues=queues,
        registry=host_registry or _registry(path, section.get("registry")),
        registry_username_env=section.get("registry_username_env"),
        registry_password_env=section.get("registry_password_env"),
        requirements=tuple(str(r) for r in section.get("requirements", ())),
        extras=tuple(section.get("extras", ())),
        dependency_groups=tuple(section.get("dependency_groups", ())),
        declarations=tuple(str(d) for d in section.get("declarations", config.declarations)),
        mounts=_mounts(path, section.get("mounts", [])),
        host_mounts=host_mounts,
        dependency_match=str(section.get("dependency_match", config.dependency_match)),
        external_scripts=tuple(str(g) for g in section.get("external_scripts", ())),
        dependency_match_for=_modes(path, text, section.get("dependency_match_for", {})),
        memory=section.get("memory"),
        cpus=None if section.get("cpus") is None else float(section["cpus"]),
        pids_limit=section.get("pids_limit"),
        network=section.get("network"),
        allow_dangerous_mounts=bool(section.get("allow_dangerous_mounts", False)),
        secrets=tuple(section.get("secrets", ())),
        **{
            key: _float(section.get(key))
            for key in ("timeout", "grace", "vram_timeout", "lease_timeout", "image_timeout")
        },
        ca_bundle=section.get("ca_bundle"),
        install=str(section.get("install", config.install)),
        python=_pythons(section.get("python")),
        origins=origins,
        system_packages=_packages(section.get("system_packages")),
    )


def _packages(value: object) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    table = {"all": value} if isinstance(value, list) else value
    return {str(k): tuple(dict.fromkeys(v)) for k, v in table.items()}  # type: ignore[union-attr]


TIMEOUTS = ("timeout", "grace", "vram_timeout", "lease_timeout", "image_timeout")
# An image's time: what a cold agent may spend building or pulling before the run gives up (exit 75,
# retried), and what each CI job's timeout adds to its step's. Bounded, so a pull request cannot make
# its jobs run for days.
IMAGE_TIMEOUT_S = 1200.0
IMAGE_TIMEOUT_MAX_S = 3600.0


def image_timeout_s(config: ProjectConfig) -> float:
    value = IMAGE_TIMEOUT_S if config.image_timeout is None else float(config.image_timeout)
    if value > IMAGE_TIMEOUT_MAX_S:
        raise UsageError(
            f"image_timeout ([tool.gpuci] or --image-timeout) is {value:g} seconds; at most "
            f"{IMAGE_TIMEOUT_MAX_S:g} (an hour) is taken: publish the image once (`gpuci image publish`) and pull "
            "it, or lower the setting."
        )
    return value


def _pythons(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(dict.fromkeys(value))  # type: ignore[arg-type]


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _is(kind: str, value: object) -> bool:
    if kind == "path":  # it reaches a Dockerfile and shell lines: plain path characters only
        return isinstance(value, str) and SAFE_PATH.match(value) is not None
    if kind == "str":
        return isinstance(value, str) and value != ""
    if kind == "pythons":
        versions = [value] if isinstance(value, str) else value
        return isinstance(versions, list) and bool(versions) and all(v in SUITES for v in versions)
    if kind == "install":
        return value in ("editable", "none")
    if kind == "match":
        return value in DEPENDENCY_MATCHES
    if kind == "size":
        return isinstance(value, str) and re.match(r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$", value) is not None
    if kind in ("number", "count"):
        wanted = int if kind == "count" else (int, float)
        return isinstance(value, wanted) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "packages":  # each name reaches an apt-get line: Debian's name form only
        table = {"all": value} if isinstance(value, list) else value
        keys = (PACKAGE_TABLE_KEY_ALL, *platform_names())
        return isinstance(table, dict) and all(
            k in keys and isinstance(v, list) and all(_is_package(n) for n in v) for k, v in table.items()
        )
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    return isinstance(value, dict) and all(isinstance(v, str) and v for v in value.values())


def _is_package(name: object) -> bool:
    return isinstance(name, str) and PACKAGE_NAME.match(name) is not None


def _modes(path: Path, text: str, table: dict[str, str]) -> dict[str, str]:
    bad = {k: v for k, v in table.items() if v not in DEPENDENCY_MATCHES}
    if bad:
        key, value = next(iter(bad.items()))
        raise UsageError(
            f"{path}:{_line(text, 'dependency_match_for')}: [tool.gpuci.dependency_match_for] {key!r} is "
            f"{value!r}; each value must be {KIND_WORDS['match']}."
        )
    return dict(table)


def _line(text: str, key: str) -> int:
    """The line of `key =` (or `[tool.gpuci.key]`) in the file: tomllib keeps no positions."""
    pattern = re.compile(rf"^\s*(\[tool\.gpuci\.)?{re.escape(key)}\b")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return number
    return 1


def _mounts(path: Path, declared: object) -> tuple[str, ...]:
    """SOURCE:TARGET[:ro|rw] entries, checked for form here and for a source that exists at run time."""
    if not isinstance(declared, list):
        declared = [declared]
    mounts = tuple(str(m).strip() for m in declared)
    for mount in mounts:
        parts = mount.split(":")
        if (
            len(parts) not in (2, 3, 4)
            or not parts[0]
            or not parts[1].startswith("/")
            or parts[2:] not in ([], ["ro"], ["rw"], ["dangerous"], ["ro", "dangerous"], ["rw", "dangerous"])
        ):
            raise UsageError(
                f"{path}: [tool.gpuci] mounts (or {MOUNTS_ENV}) entry {mount!r} is not "
                "SOURCE:TARGET[:ro|rw][:dangerous] with an absolute TARGET; e.g. "
                "'~/.cache/huggingface:/root/.cache/huggingface:ro' (a relative SOURCE is in the checkout)."
            )
    return mounts


def _registry(path: Path, value: object) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip().rstrip("/")
    if "://" in text or not REGISTRY_FORMAT.match(text):
        raise UsageError(
            f"{path}: [tool.gpuci] registry (or {REGISTRY_ENV}) is {value!r}; give HOST[:PORT][/PATH] "
            "as Docker names repositories, e.g. 'registry.example.com:5000/ci' (no scheme, lowercase path)."
        )
    return text


def config_with_flags(root: Path, args: Any, *, for_host: bool = True) -> ProjectConfig:
    """[tool.gpuci] of `root` with the command line's settings over it (harness.declare.settings)."""
    return load_config(root, for_host=for_host).with_flags(**from_flags(args))


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
