"""A `test_*.py` file that is a script, not tests: pytest would error on it, not run tests.

Benchmarks and examples are often named `test_x.py` and run as `python test_x.py`: their `test_`
functions take arguments (`def test_throughput(model, batch)`) that no fixture provides, and the
module has a `__main__` block. Such a module is no test CI misses.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Callable

from harness.ci.lint.cache import Analysis

# Fixtures pytest and its common plugins provide to any test.
BUILTIN_FIXTURES = frozenset(
    {
        "request", "tmp_path", "tmpdir", "tmp_path_factory", "tmpdir_factory", "capsys", "capfd", "capsysbinary",
        "capfdbinary", "caplog", "monkeypatch", "recwarn", "pytestconfig", "record_property",
        "record_testsuite_property", "record_xml_attribute", "cache", "doctest_namespace", "testdir", "pytester",
        "worker_id", "testrun_uid", "benchmark", "mocker", "event_loop", "subtests",
    }
)  # fmt: skip
FIXTURE_DEF = re.compile(r"@pytest\.fixture[^\n]*\n(?:\s*@[^\n]*\n)*\s*(?:async\s+)?def\s+(\w+)")


def is_script_not_tests(text: str, fixtures: frozenset[str]) -> bool:
    """A module with a `__main__` block whose every test function needs arguments no fixture gives."""
    return script_needs_of(test_needs(text), fixtures)


def script_needs_of(needs: list[list[str]] | None, fixtures: frozenset[str]) -> bool:
    """`is_script_not_tests` from `test_needs`: every test wants a name no fixture gives."""
    return needs is not None and all(any(name not in fixtures for name in names) for names in needs)


def test_needs(text: str) -> list[list[str]] | None:
    """For a `__main__` module with test functions: each test's arguments its own module does not
    provide (by fixture or parametrize); None for any other module. The project's conftest
    fixtures are judged after, so this depends on the module's text alone."""
    if "__main__" not in text:
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    has_main = any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)
    if not has_main:
        return None
    known = set(FIXTURE_DEF.findall(text)) | _parametrized(tree) | {"self"}
    tests = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
    ]
    if not tests:
        return None
    return [
        [a.arg for a in [*test.args.posonlyargs, *test.args.args, *test.args.kwonlyargs] if a.arg not in known]
        for test in tests
    ]


TEST_NEEDS: Analysis[list[list[str]] | None] = Analysis("test-needs", test_needs)


def _parametrized(tree: ast.Module) -> set[str]:
    """Argument names `@pytest.mark.parametrize("a,b", …)` gives."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and "parametrize" in ast.unparse(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.update(n.strip() for n in first.value.split(","))
    return names


def project_fixtures(files: list[str], read: Callable[[str], str]) -> frozenset[str]:
    """Fixture names the project's conftest files define."""
    found: set[str] = set()
    for path in files:
        if posixpath.basename(path) == "conftest.py":
            found.update(FIXTURE_DEF.findall(read(path)))
    return frozenset(found) | BUILTIN_FIXTURES
