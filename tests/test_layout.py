"""The layout shows the stages: imports only run with the flow, no cycles, no oversized module."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

HARNESS = ROOT / "harness"
# The flow, left to right: a module imports only from its own stage or stages to its left. gpu comes
# before declare: a platform is its vendor's (harness.gpu.vendors), and the declarations name platforms.
# teardown (process trees, ended by declare's one StopPolicy) serves the run and the plugin in the container.
STAGES = ["shared", "gpu", "declare", "teardown", "images", "reports", "run", "plugin", "ci", "entry"]
SHARED = {
    "errors", "console", "units", "redact", "untrusted", "git", "owned", "host_python", "state", "ci_provider",
    "in_container",
}  # fmt: skip
# What runs inside the container: gpuci's pytest plugin, which never imports the run on the host.
IN_CONTAINER = ("harness.plugin", "harness.pytest_plugin")
ENTRY = {"cli", "arguments", "__main__", "repro", "pytest_plugin", "sessions"}
MAX_LINES = 400
MAX_PARAMETERS = 6
# Where vendor knowledge lives (one module a vendor), and where the CI service's environment is read.
VENDOR_MODULES = HARNESS / "gpu" / "vendors"
CI_PROVIDER = HARNESS / "ci_provider.py"
# Vendor names as code spells them: whole words of an identifier or of a name-like string. Long names
# match as prefixes too (nvidiactl, cudnn9, rocm6); short ones only alone (amd, amd_options, AMD_X, not
# "amdahl"; hip, HIP_PATH, not "ship"). Case-insensitive.
VENDOR_WORDS = re.compile(r"(?i)(?<![a-z])(cuda|cudnn|rocm|nvidia|nvml|pynvml|amdsmi|amdgpu|(?:amd|hip|kfd)(?![a-z]))")
# A Buildkite variable's name, as a string: the environment's word for reading it.
BUILDKITE_VARIABLE = re.compile(r"^BUILDKITE(_[A-Z0-9_]+)?$")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "entry"
    if parts[1] in SHARED:
        return "shared"
    if parts[1] in ENTRY:
        return "entry"
    return parts[1]


def _imports() -> dict[str, set[str]]:
    """Every harness module's imports of other harness modules, lazy ones (inside functions) included."""
    modules = {_module(p): p for p in HARNESS.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("harness"))
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_every_module_sits_in_a_known_stage() -> None:
    for module in _imports():
        assert _stage(module) in STAGES, f"{module} is in no stage of the flow ({', '.join(STAGES)})"


def test_imports_run_only_with_the_flow() -> None:
    against = [
        f"{a} ({_stage(a)}) imports {b} ({_stage(b)})"
        for a, targets in _imports().items()
        for b in targets
        if STAGES.index(_stage(b)) > STAGES.index(_stage(a)) and not b.endswith("__init__")
    ]
    assert not against, "imports against the flow:\n" + "\n".join(sorted(against))


def _plugin_imports_of_the_run(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} imports {b}"
        for a, targets in graph.items()
        if a.startswith(IN_CONTAINER)
        for b in targets
        if b == "harness.run" or b.startswith("harness.run.")
    )


def test_the_plugin_never_imports_the_run() -> None:
    """The plugin runs inside the container: what it shares with the host's run (the stop policy, process
    trees, the outbox's names) lives in a module both import (harness.declare, harness.teardown,
    harness.in_container)."""
    found = _plugin_imports_of_the_run(_imports())
    assert not found, "the plugin imports the run:\n" + "\n".join(found)


def test_the_plugin_rule_sees_what_it_should() -> None:
    graph = {
        "harness.plugin.servers": {"harness.run.supervise.stop", "harness.teardown.process_tree"},
        "harness.pytest_plugin": {"harness.run"},
        "harness.plugin.state": {"harness.in_container", "harness.runner_notes"},
        "harness.run.plan": {"harness.run.spec"},  # the run's own imports are no concern of the rule
    }
    assert _plugin_imports_of_the_run(graph) == [
        "harness.plugin.servers imports harness.run.supervise.stop",
        "harness.pytest_plugin imports harness.run",
    ]


def test_no_import_cycles() -> None:
    graph = _imports()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_past_the_size_where_it_holds_two_jobs() -> None:
    big = {
        str(p.relative_to(ROOT)): n for p in HARNESS.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines (cut them by job): {big}"


def _function_parameters(path: Path) -> Iterator[tuple[int, str, int]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg not in ("self", "cls")]
            yield node.lineno, node.name, len(names) + bool(args.vararg) + bool(args.kwarg)


def test_no_function_in_harness_takes_more_than_six_parameters() -> None:
    """Past six parameters a function carries state by hand: pack it into a small dataclass (docker-py's
    long keyword lists live only at the API edge)."""
    long = [
        f"{path.relative_to(ROOT)}:{line} {name} ({count})"
        for path in sorted(HARNESS.rglob("*.py"))
        for line, name, count in _function_parameters(path)
        if count > MAX_PARAMETERS
    ]
    assert not long, f"functions with more than {MAX_PARAMETERS} parameters: {long}"


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def _code_words(path: Path) -> Iterator[tuple[int, str, bool]]:
    """Every name the code spells (identifiers, attributes, imports, keywords) and every string without
    whitespace in it (a variable's name, a path, an image); docstrings, comments and prose (a message,
    a help text: strings with spaces) are not code's names and are left out. (line, text, is a string)."""
    tree = ast.parse(path.read_text())
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if not re.search(r"\s", node.value):
                yield line, node.value, True
        elif isinstance(node, ast.Name):
            yield line, node.id, False
        elif isinstance(node, ast.Attribute):
            yield line, node.attr, False
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield line, node.name, False
        elif isinstance(node, (ast.arg, ast.keyword)) and node.arg:
            yield line, node.arg, False
        elif isinstance(node, ast.alias):
            yield line, f"{node.name} {node.asname or ''}", False
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield line, node.module, False


def test_vendor_names_only_in_vendor_modules() -> None:
    """cuda, rocm, nvidia, amd, nvml, amdsmi, hip and the like are spelt by code only in harness/gpu/vendors/:
    a new vendor is one module and one registration, not a hunt through the stages."""
    found = [
        f"{path.relative_to(ROOT)}:{line} {text!r}"
        for path in sorted(HARNESS.rglob("*.py"))
        if VENDOR_MODULES not in path.parents
        for line, text, _ in _code_words(path)
        if VENDOR_WORDS.search(text)
    ]
    assert not found, "vendor names outside harness/gpu/vendors/:\n" + "\n".join(found)


def test_the_vendor_rule_sees_what_it_should() -> None:
    """The rule's own check: names, strings and imports fire; prose, docstrings and lookalikes do not."""
    hits = {
        text
        for text in ("is_cuda", "CUDA_VISIBLE_DEVICES", "nvidiactl", "NvmlBackend", "mirror.amd", "HIP_PATH", "amdsmi")
        if VENDOR_WORDS.search(text)
    }
    assert len(hits) == 7
    assert not [t for t in ("ownership", "amdahl", "shipping", "chip", "kfds", "abcuda") if VENDOR_WORDS.search(t)]


def test_buildkite_variables_are_read_in_one_module() -> None:
    """Buildkite's environment (`BUILDKITE`, `BUILDKITE_*` as strings: the names os.environ is read by)
    is named only by harness/ci_provider.py; `BUILDKITE_DIR`, a Python name, is no variable of Buildkite's."""
    found = [
        f"{path.relative_to(ROOT)}:{line} {text!r}"
        for path in sorted(HARNESS.rglob("*.py"))
        if path != CI_PROVIDER
        for line, text, is_string in _code_words(path)
        if is_string and BUILDKITE_VARIABLE.match(text)
    ]
    assert not found, "Buildkite variables outside harness/ci_provider.py:\n" + "\n".join(found)
