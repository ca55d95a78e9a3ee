"""Gates in Python test modules: variables a module checks to enable its tests."""

from __future__ import annotations

import ast
import bisect
import re

from harness.ci.lint.cache import Analysis
from harness.ci.lint.top_level import parse_pieces, pieces
from harness.gpu.vendors import vendors

# Set by the CI environment or by gpuci itself, never by a step: not gates a step must set.
# Also the host's toolchain probes and the agent's secrets: a step cannot (and must not) set those.
# The vendors' toolchain variables (harness.gpu.vendors) count too: see `is_ambient`.
AMBIENT = re.compile(
    r"^(BUILDKITE.*|CI|HOME|PATH|USER|PWD|TMPDIR|PYTHONPATH|GPUCI_.*|[A-Z]+_VISIBLE_DEVICES"
    r"|BASH.*|.*(TOKEN|SECRET|PASSWORD|_KEY).*)$"
)


def is_ambient(variable: str) -> bool:
    return bool(AMBIENT.match(variable)) or any(variable in v.lint.toolkit_variables for v in vendors())


PY_GATE = re.compile(
    r"""os\.(?:environ\.get|getenv)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']|os\.environ\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
    r"""|["']([A-Za-z_][A-Za-z0-9_]*)["']\s+(?:not\s+)?in\s+os\.environ"""
)


def python_gates(text: str) -> set[str]:
    """Variables whose being set turns a test module's tests on: read in a skip condition under
    `not` (`skipif(not os.getenv("X"))`, `"X" not in os.environ`, `is None`), directly or through
    a module-level name (`X = os.getenv("X")` … `skipif(not X)`). Not gates: a variable that turns
    tests off when set, or one read with a default that runs them anyway."""
    if ("environ" not in text and "getenv" not in text) or ("skip" not in text and "pytestmark" not in text):
        return set()  # reads no environment, or skips nothing: no gate, not worth parsing
    # Only statements that read the environment, and those that skip on it or on a name set from
    # it, matter: those are parsed, each alone. Their answer is the whole module's when it parses,
    # and when it does not the answer is the text's; where the two differ, the whole is parsed.
    wanted = _wanted_statements(text)
    if wanted is not None:
        gates = _gates_of(wanted, text)
        if gates == _python_gates_by_text(text):
            return gates
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):  # a pull request's module may nest past the parser
        return _python_gates_by_text(text)
    return _gates_of(tree, text)


COMPOUND = ("def ", "async def ", "class ", "@")  # a piece that is one function or class


def _wanted_statements(text: str) -> ast.Module | None:
    """The top-level statements a gate can come from: those that read the environment (a skip
    condition with a read, or a module-level name set from one), and those that skip and name such
    a name. A skip with neither gives no gate. None where the module must be parsed whole."""
    cut = pieces(text)
    if cut is None:
        return None
    # A function or class reading the environment outside any skip gives no gate, and a module-level
    # name comes only from an assignment, which is no function or class: those are not parsed.
    reads = [
        (start, piece)
        for start, piece in cut
        if ("environ" in piece or "getenv" in piece) and ("skip" in piece or not piece.startswith(COMPOUND))
    ]
    tree = parse_pieces(reads)
    if tree is None:
        return None
    names = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]
    skips = [
        (start, piece)
        for start, piece in cut
        if "skip" in piece and "environ" not in piece and "getenv" not in piece and any(n in piece for n in names)
    ]
    if not skips:
        return tree
    others = parse_pieces(skips)
    if others is None:
        return None
    by_line = sorted([*tree.body, *others.body], key=lambda node: node.lineno)  # as they stand in the module
    return ast.Module(body=by_line, type_ignores=[])


def _gates_of(tree: ast.Module, text: str) -> set[str]:
    """The gates of a parsed module (or of the statements of it that skip or read the environment)."""
    names: dict[str, str] = {}  # module-level name -> the variable it reads, where no default runs the tests
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            variable = _env_read(node.value)
            if variable:
                names[node.targets[0].id] = variable
    gates: set[str] = set()
    for condition in _skip_conditions(tree, text):
        gates |= _enabling(condition, names, negated=False)
    return gates


def _env_read(node: ast.AST) -> str | None:
    """`os.getenv("X")`, `os.environ.get("X")` (with no default, or a falsy one), or `os.environ["X"]`."""
    read = _key_and_default(node)
    if read is not None:
        key, default = read
        return key if default in (None, "", "0", False) else None  # a default that runs the tests: no gate
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
        key = node.slice
        return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
    if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) and node.args:
        return _env_read(node.args[0])  # bool(os.getenv("X")), int(os.environ.get("X", "0"))
    return None


def _key_and_default(node: ast.AST) -> tuple[str, object] | None:
    """`os.environ.get("X", D)` / `os.getenv("X", D)`: the variable and its default (None if none)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
        return None
    if (ast.unparse(node.func.value), node.func.attr) not in (("os", "getenv"), ("os.environ", "get")):
        return None
    key, default = node.args[0], node.args[1] if len(node.args) > 1 else None
    if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
        return None
    if default is not None and not isinstance(default, ast.Constant):
        return None
    return key.value, None if default is None else default.value


def _skip_conditions(tree: ast.AST, text: str = "") -> list[ast.AST]:
    """What makes tests skip: skipif's first argument, and the test of an `if` whose body skips.
    With the module's `text`, only statements whose lines mention `skip` are walked into."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # numbered as the parser numbers them
    skip_lines = [i for i, line in enumerate(lines, 1) if "skip" in line] if text else None
    found: list[ast.AST] = []
    parents: dict[int, ast.AST] = {}
    skips: list[ast.AST] = []  # `pytest.skip(…)` / `skip(…)` calls: each `if` around one skips
    stack = [tree]
    while stack:  # one walk, noting each node's parent (an `if` is found from the skip inside it)
        node = stack.pop()
        if skip_lines is not None and isinstance(node, ast.stmt) and not _mentions(skip_lines, node):
            continue  # a statement whose lines never say `skip` holds no skip and no skipif
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
            stack.append(child)
        if isinstance(node, ast.Call):
            name = _called(node.func)
            if name.endswith("skipif") and node.args:
                found.append(node.args[0])
            elif name in ("pytest.skip", "skip"):
                skips.append(node)
    branches: dict[int, ast.If] = {}
    for skip in skips:
        above = parents.get(id(skip))
        while above is not None:
            if isinstance(above, ast.If):
                branches[id(above)] = above
            above = parents.get(id(above))
    return found + [branch.test for branch in branches.values()]


def _mentions(lines: list[int], node: ast.stmt) -> bool:
    """Whether one of the sorted line numbers `lines` falls within the statement's lines (a
    function's or class's decorators, above its `def` line, included)."""
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
    at = bisect.bisect_left(lines, start)
    return at < len(lines) and lines[at] <= (node.end_lineno or node.lineno)


def _called(func: ast.expr) -> str:
    """A call's function as written, for a name (`skipif`, `pytest.mark.skipif`, `pytest.skip`);
    "" for anything else (a call's result, a subscript), which never names a skip."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        inner = _called(func.value)
        return f"{inner}.{func.attr}" if inner else f"?.{func.attr}"
    return ""


def _enabling(node: ast.AST, names: dict[str, str], negated: bool) -> set[str]:
    """Variables that, read under a `not` in a skip condition, must be set for the tests to run."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _enabling(node.operand, names, not negated)
    if isinstance(node, ast.BoolOp):
        return set().union(*(_enabling(v, names, negated) for v in node.values))
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        op, right = node.ops[0], node.comparators[0]
        if isinstance(op, (ast.In, ast.NotIn)) and ast.unparse(right) == "os.environ":
            key = node.left
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                return {key.value} if isinstance(op, ast.NotIn) != negated else set()
        if isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value is None:
            return _enabling(node.left, names, not negated)
        if isinstance(op, (ast.Eq, ast.NotEq)) and isinstance(right, ast.Constant):
            # skipif(os.environ.get("X", "0") != "1"): skipped unset, run when set to the compared value
            read = _key_and_default(node.left)
            if read is None:
                return set()
            key, default = read
            skip_unset = (default == right.value) == isinstance(op, ast.Eq)
            skip_set = isinstance(op, ast.Eq)
            if negated:
                skip_unset, skip_set = not skip_unset, not skip_set
            return {key} if skip_unset and not skip_set else set()
        return set()
    variable = _env_read(node) or (names.get(node.id) if isinstance(node, ast.Name) else None)
    return {variable} if variable and negated else set()


def _python_gates_by_text(text: str) -> set[str]:
    """For a module that does not parse: env reads near a skip (on the line or the two above), as before.
    Every read the pattern takes names `environ` or `getenv`: only such lines are looked at."""
    gates = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "environ" not in line and "getenv" not in line:
            continue
        window = lines[max(0, i - 2) : i + 1]
        if any("skip" in near or "pytestmark" in near for near in window):
            for match in PY_GATE.finditer(line):
                gates.add(next(g for g in match.groups() if g))
    return gates


PYTHON_GATES: Analysis[set[str]] = Analysis("python-gates", python_gates, sorted, set)
