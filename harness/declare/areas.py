"""Load test-area declarations (`.buildkite/test_areas/*.yaml`) into plain dataclasses.

Files written for other Buildkite pipelines load unchanged: keys gpuci does not use are kept
in `Step.extra` and ignored, while a near-miss of a key gpuci does use (`comands`) is an
error with file, line and a suggestion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from harness.declare.platforms import platform_names
from harness.declare.reader import Reader, suggest
from harness.declare.step_forms import IGNORED_WITH_WARNING, IGNORED_WITH_WARNING_WHY, command_steps, unique_labels
from harness.declare.step_keys import limits, python_of, shutdown_budget
from harness.declare.yaml_nodes import LOADER, Converter, expanded_size
from harness.declare.yaml_nodes import Node as _Node
from harness.errors import DeclarationError
from harness.gpu.vendors import vendors
from harness.untrusted import Refused, read_capped

AREAS_DIR = Path(".buildkite") / "test_areas"

# Step keys gpuci reads; a misspelling of one of these is an error.
STEP_KEYS = frozenset(
    {
        "label",
        "key",
        "commands",
        "command",
        "source_file_dependencies",
        "timeout_in_minutes",
        "num_gpus",
        "num_devices",
        "device",
        "working_dir",
        "optional",
        "soft_fail",
        "parallelism",
        "env",
        "no_gpu",
        "mirror",
        "depends_on",
        "num_nodes",
        "agent_tags",
        "concurrency",
        "concurrency_group",
        "retry",
        # gpuci's own keys
        "platforms",
        "shutdown_budget",
        "run_as_root",
        "memory",
        "cpus",
        "pids_limit",
        "network",
        "python",
    }
)
MAX_LABEL = 500
# Bounds on one declaration: the largest real pipeline files are a few hundred KB; past these a file
# is an attack or an accident, and reading it must not cost minutes and gigabytes.
MAX_FILE_BYTES = 4 * 2**20
MAX_EXPANDED_NODES = 1_000_000
AREA_KEYS = frozenset({"group", "steps", "platforms", "depends_on"})
# Keys of `mirror: {amd: {...}}` that override the base step in its ROCm form.
MIRROR_KEYS = frozenset(
    {
        "device",
        "commands",
        "timeout_in_minutes",
        "working_dir",
        "source_file_dependencies",
        "soft_fail",
        "depends_on",
    }
)


@dataclass(frozen=True)
class Step:
    label: str
    commands: tuple[str, ...]
    platforms: tuple[str, ...]
    line: int
    source_file_dependencies: tuple[str, ...] = ()
    timeout_in_minutes: int | None = None
    num_gpus: int = 1
    num_nodes: int = 1
    # `commands` given as one list per node (each run on its node, in the working dir).
    per_node_commands: bool = False
    device: str | None = None
    working_dir: str | None = None
    optional: bool = False
    soft_fail: bool = False
    parallelism: int = 1
    env: dict[str, str] = field(default_factory=dict)
    # Per-platform stop budgets in seconds that override the platform's default.
    shutdown_budget: dict[str, float] = field(default_factory=dict)
    key: str | None = None
    depends_on: tuple[str, ...] = ()
    # Dependencies given as {step: KEY, allow_failure: true}: this step runs even if they fail.
    allow_failure_of: tuple[str, ...] = ()
    concurrency: int | None = None
    concurrency_group: str | None = None
    agent_tags: dict[str, str] = field(default_factory=dict)
    # The workload runs as the invoking user (files it writes stay theirs) unless a step asks for root.
    run_as_root: bool = False
    # The container's limits where the step sets them (else [tool.gpuci]'s): memory in Docker's form
    # (16g), CPUs, processes, and a network mode (`none`: no network).
    memory: str | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    network: str | None = None
    # The Python this step's image runs on gpuci's Debian base (harness.declare.pythons), over [tool.gpuci]'s.
    python: str | None = None
    # Per platform, keys that replace the base step's (the ROCm form from `mirror.amd`).
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def on(self, platform: str) -> Step:
        """This step as it runs on `platform`: the base form with that platform's overrides."""
        return replace(self, **self.overrides[platform]) if platform in self.overrides else self


@dataclass(frozen=True)
class Area:
    name: str
    group: str
    path: Path
    steps: tuple[Step, ...]
    # Constructs gpuci cannot honour (file:line and why), for lint and pipeline to print.
    warnings: tuple[str, ...] = ()

    @property
    def platforms(self) -> tuple[str, ...]:
        seen: list[str] = []
        for step in self.steps:
            seen.extend(p for p in step.platforms if p not in seen)
        return tuple(p for p in platform_names() if p in seen)

    def steps_for(self, platform: str) -> tuple[Step, ...]:
        return tuple(s.on(platform) for s in self.steps if platform in s.platforms)

    def step(self, label: str, platform: str) -> Step:
        for step in self.steps_for(platform):
            if step.label == label:
                return step
        labels = ", ".join(repr(s.label) for s in self.steps_for(platform)) or "none"
        raise DeclarationError(
            self.path, None, f"no step labelled {label!r} runs on {platform}; steps there: {labels}."
        )


def _platforms(reader: Reader, default: tuple[str, ...]) -> tuple[str, ...]:
    if "platforms" not in reader.mapping:
        return default
    platforms = reader.string_list("platforms")
    for name in platforms:
        if name not in platform_names():
            hint = suggest(name, frozenset(platform_names()), cutoff=0.5)
            extra = f"; did you mean {hint!r}?" if hint else f"; known: {', '.join(platform_names())}."
            raise reader.fail("platforms", f"unknown platform {name!r}{extra}")
    return platforms


def _default_platforms(reader: Reader) -> tuple[str, ...]:
    """A foreign step runs where its pipelines are written for (the vendor with `foreign.default`), and
    also on each vendor it mirrors to; a vendor's own agent device runs only there; no-GPU steps are cpu."""
    device = reader.get("device", str, "") or ""
    if reader.get("no_gpu", bool, False) or "cpu" in device.split("-")[0].split("_"):
        return ("cpu",)  # cpu, cpu-small, intel_cpu, arm_cpu
    for vendor in vendors():
        if vendor.foreign.agent_device and re.match(vendor.foreign.agent_device, device):
            return (vendor.platform,)
    mirror = reader.get("mirror", dict, {}) or {}
    # `mirror.KEY`, or the older `mirror_hardwares: [KEYexperimental, …]`: the step also runs there.
    node = reader.mapping.get("mirror_hardwares")
    hardwares = reader.conv.unwrap(node.value) if node is not None else None
    listed = [str(h) for h in hardwares] if isinstance(hardwares, list) else []
    return tuple(
        v.platform
        for v in vendors()
        if v.foreign.default or (v.foreign.mirror_key and _mirrors(v.foreign.mirror_key, mirror, listed))
    )


def _mirrors(key: str, mirror: dict[str, Any], hardwares: list[str]) -> bool:
    return key in mirror or any(h.startswith(key) for h in hardwares)


def _mirror_overrides(path: Path, node: _Node, conv: Converter) -> dict[str, dict[str, Any]]:
    """Each `mirror.KEY` read as the step's form on the platform of the vendor with that mirror key."""
    mirror = node.value.get("mirror")
    if mirror is None or not isinstance(mirror.value.value, dict):
        return {}
    forms: dict[str, dict[str, Any]] = {}
    for vendor in vendors():
        key = vendor.foreign.mirror_key
        if key and mirror.value.value.get(key) is not None:
            forms[vendor.platform] = _mirror_form(path, mirror.value.value[key].value, key, conv)
    return forms


def _mirror_form(path: Path, form: Any, key: str, conv: Converter) -> dict[str, Any]:
    if not isinstance(form.value, dict):
        raise DeclarationError(path, form.line, f"'mirror.{key}' must be a mapping of step keys.")
    reader = Reader(path, form.value, form.line, f"mirror.{key}", conv)
    reader.check_keys(MIRROR_KEYS)
    overrides: dict[str, Any] = {}
    for name in ("commands", "source_file_dependencies"):
        if name in form.value:
            overrides[name] = reader.string_list(name)
    if "depends_on" in form.value:
        overrides["depends_on"], overrides["allow_failure_of"] = reader.dependencies("depends_on")
    for name, kind in (("device", str), ("working_dir", str), ("timeout_in_minutes", int)):
        if name in form.value:
            overrides[name] = reader.get(name, kind)
    if "soft_fail" in form.value:
        overrides["soft_fail"] = bool(reader.get("soft_fail", (bool, list)))
    return overrides


def _step(path: Path, node: _Node, index: int, area_platforms: tuple[str, ...] | None, conv: Converter) -> Step:
    probe = Reader(path, node.value, node.line, f"step {index + 1}", conv)
    label = probe.get("label", (str, int, float), None) or probe.get("name", (str, int, float), None)
    reader = Reader(path, node.value, node.line, f"step {label!r}" if label else probe.what, conv)
    reader.check_keys(STEP_KEYS)
    if "commands" in node.value and "command" in node.value:
        raise reader.fail("command", "has both 'command' and 'commands'; keep one.")
    commands = reader.string_list("commands" if "commands" in node.value else "command")
    raw_commands = reader.get("commands", (list, str), []) if "commands" in node.value else []
    per_node = isinstance(raw_commands, list) and any(isinstance(c, list) for c in raw_commands)
    if not commands:
        raise reader.fail(None, "has no 'commands'; add the shell lines the step runs.")
    if label is None:
        # Buildkite shows a step without a label by its key or its command.
        label = reader.get("key", str, None) or commands[0][:60]
    if any(ord(c) < 32 or c == "\x7f" for c in str(label)) or len(str(label)) > MAX_LABEL:
        raise reader.fail(
            "label", f"the label must be one line of at most {MAX_LABEL} characters without control characters."
        )
    num_gpus = reader.get("num_gpus", int, None)
    if num_gpus is None:
        num_gpus = reader.get("num_devices", int, 1)
    for key, value in (("num_gpus", num_gpus), ("parallelism", reader.get("parallelism", int, 1))):
        if value < (0 if key == "num_gpus" else 1):
            raise reader.fail(key, f"{key!r} must not be {value}.")
    timeout = reader.get("timeout_in_minutes", int, None)
    if timeout is not None and timeout <= 0:
        raise reader.fail("timeout_in_minutes", "'timeout_in_minutes' must be greater than 0.")
    env = reader.get("env", dict, {}) or {}
    if any(not isinstance(v, (str, int, float, bool)) for v in env.values()):
        raise reader.fail("env", "'env' values must be strings or numbers.")
    default = area_platforms or _default_platforms(reader)
    step_platforms = _platforms(reader, default)
    gpu_platforms = [p for p in step_platforms if p != "cpu"]
    if num_gpus == 0 and gpu_platforms:
        key = "num_gpus" if "num_gpus" in node.value else "num_devices"
        raise reader.fail(
            key,
            f"asks for 0 GPUs but runs on {', '.join(gpu_platforms)}; a step with no GPU is a cpu step "
            "(platforms: [cpu] or no_gpu: true).",
        )
    return Step(
        label=str(label),
        commands=commands,
        platforms=step_platforms,
        line=node.line,
        source_file_dependencies=reader.string_list("source_file_dependencies"),
        timeout_in_minutes=timeout,
        num_gpus=num_gpus,
        num_nodes=reader.get("num_nodes", int, 1),
        per_node_commands=per_node,
        device=reader.get("device", str, None),
        working_dir=reader.get("working_dir", str, None),
        optional=reader.get("optional", bool, False),
        soft_fail=bool(reader.get("soft_fail", (bool, list), False)),
        parallelism=reader.get("parallelism", int, 1),
        env={str(k): str(v) for k, v in env.items()},
        shutdown_budget=shutdown_budget(reader),
        key=reader.get("key", str, None),
        depends_on=reader.dependencies("depends_on")[0],
        allow_failure_of=reader.dependencies("depends_on")[1],
        concurrency=reader.get("concurrency", int, None),
        concurrency_group=reader.get("concurrency_group", str, None),
        agent_tags={str(k): str(v) for k, v in (reader.get("agent_tags", dict, {}) or {}).items()},
        run_as_root=reader.get("run_as_root", bool, False),
        python=python_of(reader),
        **limits(reader),
        overrides=_mirror_overrides(path, node, conv),
        extra={k: conv.unwrap(v.value) for k, v in node.value.items() if k not in STEP_KEYS},
    )


def load_area(path: Path, name: str | None = None, platforms: tuple[str, ...] | None = None) -> Area:
    """One pipeline file; `platforms` are its steps' platforms where the file names none itself."""
    path = Path(path)
    try:
        # Never through a FIFO or a device (a link to /dev/zero), never past the cap: known before reading.
        text = read_capped(path, MAX_FILE_BYTES).decode("utf-8")
        root = yaml.compose(text, Loader=LOADER)
    except Refused as exc:
        raise DeclarationError(
            path,
            None,
            f"{str(exc).removeprefix(str(path) + ' ')}; a pipeline file is at most "
            f"{MAX_FILE_BYTES // 2**20} MiB, a regular file.",
        ) from None
    except RecursionError:  # composing is recursive too: a deep nesting is a bad file, not a crash
        raise DeclarationError(path, None, "nests too deeply to be a pipeline.") from None
    except OSError as exc:
        raise DeclarationError(path, None, f"cannot be read ({exc.strerror}).") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise DeclarationError(
            path,
            line,
            f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8.",
        ) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise DeclarationError(path, line, f"is not valid YAML: {exc.problem}.") from None
    except yaml.YAMLError as exc:  # e.g. a control character the YAML reader refuses
        raise DeclarationError(
            path, None, "is not valid YAML: " + " ".join(str(exc).split()).rstrip(".") + "."
        ) from None
    if root is None:
        # Buildkite takes an empty file (a deprecated pipeline left with a comment) as no steps.
        why = f"{path}:1: has no steps (empty, or comments only), so it declares nothing"
        return Area(name=name or path.stem, group=name or path.stem, path=path, steps=(), warnings=(why,))
    try:
        expanded = expanded_size(root, MAX_EXPANDED_NODES)
    except RecursionError:
        raise DeclarationError(path, None, "nests too deeply to be a pipeline.") from None
    if expanded > MAX_EXPANDED_NODES:
        raise DeclarationError(
            path,
            None,
            f"expands through its aliases (*name) to more than {MAX_EXPANDED_NODES:,} values; a pipeline "
            "never needs that many (an alias bomb?). Write the repeated parts out or use fewer aliases.",
        )
    try:
        return _area(path, root, name, platforms)
    except yaml.MarkedYAMLError as exc:  # a tag no constructor knows, met while converting
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        problem = exc.problem or "cannot be read as data"
        raise DeclarationError(path, line, f"is not valid YAML for a pipeline: {problem}.") from None
    except RecursionError:
        raise DeclarationError(path, None, "nests too deeply to be a pipeline.") from None


def _area(path: Path, root: yaml.Node, name: str | None, platforms: tuple[str, ...] | None) -> Area:
    conv = Converter()
    top = conv.node(root)
    if not isinstance(top.value, dict):
        raise DeclarationError(path, top.line, "must be a mapping with 'group' and 'steps'.")
    reader = Reader(path, top.value, top.line, "area", conv)
    reader.check_keys(AREA_KEYS)
    group = reader.get("group", (str, int, float), path.stem)
    area_platforms = _platforms(reader, ()) or platforms
    steps_node = top.value.get("steps")
    if steps_node is None or not isinstance(steps_node.value.value, list) or not steps_node.value.value:
        raise reader.fail("steps", "needs a non-empty list under 'steps'.")
    warnings: list[str] = []
    nodes = list(command_steps(path, steps_node.value.value, warnings))
    steps = tuple(_step(path, item, i, area_platforms, conv) for i, item in enumerate(nodes))
    steps = unique_labels(path, steps, warnings)
    for step in steps:
        for key in sorted(IGNORED_WITH_WARNING & set(step.extra)):
            warnings.append(f"{path}:{step.line}: step {step.label!r}: {key!r} {IGNORED_WITH_WARNING_WHY[key]}")
    return Area(name=name or path.stem, group=str(group), path=path, steps=steps, warnings=tuple(warnings))


def session_name(platform: str, area: str) -> str:
    return f"{platform}_{area}"
