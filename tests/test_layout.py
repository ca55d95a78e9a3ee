"""The layout shows the stages: imports only run with the flow, no cycles, no oversized module."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

HARNESS = ROOT / "harness"
# The flow, left to right: a module imports only from its own stage or stages to its left.
STAGES = ["shared", "declare", "gpu", "images", "reports", "run", "plugin", "ci", "entry"]
SHARED = {"errors", "console", "units", "redact", "untrusted", "git", "owned", "host_python", "state"}
ENTRY = {"cli", "arguments", "__main__", "repro", "pytest_plugin", "sessions"}
MAX_LINES = 400


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


def test_one_runs_data_is_handed_on_as_one_object_not_long_parameter_lists() -> None:
    """The run stage takes a `Run` (harness.run.run); past six parameters a function is carrying
    one run's state by hand again."""
    long = []
    for path in [*sorted((HARNESS / "run").rglob("*.py")), HARNESS / "repro.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [
                    a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg not in ("self", "cls")
                ]
                count = len(names) + bool(args.vararg) + bool(args.kwarg)
                if count > 6:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count})")
    assert not long, f"functions with more than 6 parameters: {long}"
