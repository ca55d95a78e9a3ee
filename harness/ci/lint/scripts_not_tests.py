"""A `test_*.py` file that is a script, not tests: pytest would error on it, not run tests.

Benchmarks and examples are often named `test_x.py` and run as `python test_x.py`: their `test_`
functions take arguments (`def test_throughput(model, batch)`) that nothing provides, and the
module has a `__main__` block. Such a module is no test CI misses.

A parameter is provided when pytest would fill it: a default value, `self`/`cls`, a fixture (the
module's, a conftest's, a plugin's the project loads: `pytest_plugins`, `-p` in its pytest
settings, a plugin package in its requirements), `@pytest.mark.parametrize` (indirect too),
`usefixtures`, and decorators that pass arguments: `unittest.mock.patch` and `patch.object`
(one mock each, `patch.dict` none, as pytest counts them), `patch.multiple`'s names, hypothesis'
`@given`. A module is a script only when some parameter of every test is none of these.
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
# Fixtures of plugins a project loads by installing them (named in its requirements or pyproject).
PLUGIN_FIXTURES = {
    "pytest-asyncio": {"event_loop_policy", "unused_tcp_port", "unused_tcp_port_factory", "unused_udp_port"},
    "pytest-mock": {"class_mocker", "module_mocker", "package_mocker", "session_mocker"},
    "pytest-benchmark": {"benchmark_weave"},
    "pytest-httpserver": {"httpserver", "make_httpserver", "httpserver_listen_address"},
    "pytest-localserver": {"httpserver", "httpsserver", "smtpserver"},
    "pytest-httpx": {"httpx_mock"},
    "pytest-aiohttp": {"aiohttp_client", "aiohttp_server", "aiohttp_raw_server", "aiohttp_unused_port"},
    "requests-mock": {"requests_mock"},
    "pytest-datadir": {"datadir", "shared_datadir", "original_datadir"},
    "syrupy": {"snapshot"},
    "pytest-snapshot": {"snapshot"},
    "anyio": {"anyio_backend", "anyio_backend_name", "anyio_backend_options"},
    "pytest-cov": {"cov", "no_cover"},
}
FIXTURE_DEF = re.compile(r"@(?:pytest(?:_asyncio)?\.)?fixture\b[^\n]*\n(?:\s*@[^\n]*\n)*\s*(?:async\s+)?def\s+(\w+)")
FIXTURE_NAME = re.compile(r"@(?:pytest(?:_asyncio)?\.)?fixture\([^)]*\bname\s*=\s*[\"'](\w+)[\"']")
PATCH = re.compile(r"(?:^|\.)patch(?:\.(object|dict|multiple))?$")


def is_script_not_tests(text: str, fixtures: frozenset[str]) -> bool:
    """A module with a `__main__` block whose every test function needs arguments nothing gives."""
    return script_needs_of(test_needs(text), fixtures)


def script_needs_of(needs: list[list[str]] | None, fixtures: frozenset[str]) -> bool:
    """`is_script_not_tests` from `test_needs`: every test wants a name nothing gives."""
    return why_a_script(needs, fixtures) is not None


def why_a_script(needs: list[list[str]] | None, fixtures: frozenset[str]) -> str | None:
    """Why pytest could run none of the module's tests (the first test and what it lacks), or None."""
    if needs is None or not all(any(name not in fixtures for name in names[1:]) for names in needs):
        return None
    test, *names = needs[0]
    lacking = ", ".join(repr(n) for n in names if n not in fixtures)
    more = f" (and its {len(needs) - 1} other test(s) likewise)" if len(needs) > 1 else ""
    return (
        f"{test} takes {lacking}, which no fixture, parametrize, patch, @given or loaded plugin provides{more}, "
        "and the module has a __main__ block: a script named like a test"
    )


def test_needs(text: str) -> list[list[str]] | None:
    """For a `__main__` module with test functions: each test's name, then the parameters its own
    module does not provide; None for any other module. The project's fixtures are judged after,
    so this depends on the module's text alone."""
    if "__main__" not in text:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None
    has_main = any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)
    if not has_main:
        return None
    known = set(FIXTURE_DEF.findall(text)) | set(FIXTURE_NAME.findall(text)) | _marked(tree)
    found: list[list[str]] = []
    for owner, decorators in _owners(tree):
        for node in owner:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                needs = _unfilled(node, [*(decorators or []), *node.decorator_list], method=decorators is not None)
                found.append([node.name, *(n for n in needs if n not in known)])
    return found or None


TEST_NEEDS: Analysis[list[list[str]] | None] = Analysis("test-needs", test_needs)


def _owners(tree: ast.Module) -> list[tuple[list[ast.stmt], list[ast.expr] | None]]:
    """The module's body (no class decorators) and each Test class's body with its decorators."""
    owners: list[tuple[list[ast.stmt], list[ast.expr] | None]] = [(tree.body, None)]
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            owners.append((node.body, node.decorator_list))
    return owners


def _unfilled(test: ast.FunctionDef | ast.AsyncFunctionDef, decorators: list[ast.expr], method: bool) -> list[str]:
    """The parameters pytest would look for as fixtures, as its own `getfuncargnames` counts them."""
    positional = [*test.args.posonlyargs, *test.args.args]
    required = [a.arg for a in positional[: len(positional) - len(test.args.defaults)]]
    required += [a.arg for a, d in zip(test.args.kwonlyargs, test.args.kw_defaults, strict=True) if d is None]
    if method and required:
        required = required[1:]  # self (cls)
    mocks, named, given_kw, given_positional = 0, set(), set(), 0
    for decorator in decorators:
        if not isinstance(decorator, ast.Call):
            continue
        func = ast.unparse(decorator.func)
        patch = PATCH.search(func)
        keywords = {k.arg for k in decorator.keywords if k.arg}
        if patch and patch.group(1) is None and len(decorator.args) < 2 and "new" not in keywords:
            mocks += 1  # @patch("x.y"): one mock, passed first
        elif patch and patch.group(1) == "object" and len(decorator.args) < 3 and "new" not in keywords:
            mocks += 1
        elif patch and patch.group(1) == "multiple":
            named |= keywords
        elif func.endswith("given"):  # hypothesis: keywords by name, positional strategies fill the last ones
            given_kw |= keywords
            given_positional += len(decorator.args)
    required = [n for n in required[mocks:] if n not in named and n not in given_kw]
    return required[: max(0, len(required) - given_positional)]


def _marked(tree: ast.Module) -> set[str]:
    """Names `@pytest.mark.parametrize("a,b", …)` (indirect or not) gives, and `usefixtures` names."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        if "parametrize" in func:
            first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "argnames"), None)
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.update(n.strip() for n in first.value.split(","))
            elif isinstance(first, (ast.List, ast.Tuple)):
                names.update(e.value for e in first.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
        elif func.endswith("usefixtures"):
            names.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return names


PLUGINS_LIST = re.compile(r"^pytest_plugins\s*=\s*(.+?)(?:\n\S|\Z)", re.M | re.S)
PLUGIN_OPTION = re.compile(r"(?:^|\s)-p\s*([\w.]+)")
SETTINGS_FILES = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg")
MAX_PLUGIN_MODULES = 200


def project_fixtures(files: list[str], read: Callable[[str], str]) -> frozenset[str]:
    """Fixture names the project gives its tests: its conftest files', the plugin modules they or its
    pytest settings load (`pytest_plugins = [...]`, `-p module`), installed plugins' (by name in its
    requirements or pyproject), and pytest's own."""
    found: set[str] = set()
    plugins: list[str] = []
    for path in files:
        name = posixpath.basename(path)
        if name == "conftest.py":
            text = read(path)
            found.update(FIXTURE_DEF.findall(text), FIXTURE_NAME.findall(text))
            plugins += _plugin_modules(text)
    settings = "\n".join(read(p) for p in SETTINGS_FILES if p in files)
    plugins += PLUGIN_OPTION.findall(settings)
    by_module = {p[:-3].replace("/", "."): p for p in files if p.endswith(".py")}
    for module in dict.fromkeys(plugins[:MAX_PLUGIN_MODULES]):
        path = by_module.get(module) or next((p for m, p in by_module.items() if m.endswith("." + module)), None)
        if path:
            text = read(path)
            found.update(FIXTURE_DEF.findall(text), FIXTURE_NAME.findall(text))
    requirements = [p for p in files if re.search(r"(^|/)requirements[^/]*\.(txt|in)$", p) and p.count("/") <= 2]
    wanted = (settings + "\n" + "\n".join(read(p) for p in requirements[:50])).lower()
    for package, names in PLUGIN_FIXTURES.items():
        if re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", wanted):
            found |= names
    return frozenset(found) | BUILTIN_FIXTURES


def _plugin_modules(text: str) -> list[str]:
    """The modules a `pytest_plugins = [...]` (or a string) names."""
    match = PLUGINS_LIST.search(text)
    return re.findall(r"[\"']([\w.]+)[\"']", match.group(1)) if match else []
