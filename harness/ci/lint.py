"""CI-coverage lint: the declarations against the tree, so CI never silently loses a test.

Each step's commands are resolved as a shell would see them, enough for CI scripts (`cd`,
`working_dir` through the workspace, `&&` chains, `VAR=x cmd`, `export`, pytest targets with
`::`, `-k`, `--ignore`, `--deselect`, `python -m pytest`, `find … | xargs pytest`, scripts run
with bash or python). Findings:

- missing-path: a path a command names that does not exist (with the likely new place);
- unrun-test: a test file, as the project's pytest config collects them, that no step reaches;
- unset-gate: a variable a test script or module checks to enable tests that no step running it sets;
- dead-dependency: a `source_file_dependencies` entry that matches no file.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
import os
import posixpath
import re
import shlex
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.declare.areas import Area, Step
from harness.declare.config import ProjectConfig

ALLOW_FILE = Path(".buildkite") / "gpuci-lint-allow.yaml"
KINDS = ("missing-path", "unrun-test", "unset-gate", "dead-dependency")
# Set by the CI environment or by gpuci itself, never by a step: not gates a step must set.
AMBIENT = re.compile(r"^(BUILDKITE.*|CI|HOME|PATH|USER|PWD|TMPDIR|PYTHONPATH|GPUCI_.*|[A-Z]+_VISIBLE_DEVICES)$")
SKIP_DIRS = {".git", ".nox", ".gpuci", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".mypy_cache"}
PYTEST_VALUE_OPTS = {
    "-k",
    "-m",
    "-c",
    "-p",
    "-o",
    "-n",
    "-W",
    "--ignore",
    "--ignore-glob",
    "--deselect",
    "--rootdir",
    "--junitxml",
    "--durations",
    "--maxfail",
    "--timeout",
    "--dist",
    "--confcutdir",
    "--basetemp",
    "--log-level",
    "--tb",
    "-r",
    "--import-mode",
}
SHELL_GATE = re.compile(r"(?:-[nz]\s+\"?\$\{?|\$\{)([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}?")
PY_GATE = re.compile(
    r"""os\.(?:environ\.get|getenv)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']|os\.environ\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
    r"""|["']([A-Za-z_][A-Za-z0-9_]*)["']\s+(?:not\s+)?in\s+os\.environ"""
)


@dataclass(frozen=True)
class Finding:
    kind: str
    file: str
    line: int
    step: str
    message: str
    path: str | None = None
    variable: str | None = None
    suggestion: str | None = None


@dataclass
class Tree:
    """The repository's files, as sorted relative POSIX paths, with lookups lint needs."""

    files: list[str]
    dirs: set[str] = field(default_factory=set)
    by_name: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def scan(cls, root: Path) -> Tree:
        files = _git_files(root)
        if files is None:
            files = []
            for directory, subdirs, names in os.walk(root):
                subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]
                rel = os.path.relpath(directory, root)
                files.extend(n if rel == "." else f"{rel}/{n}" for n in names)
        files.sort()
        tree = cls(files)
        for path in files:
            parent = posixpath.dirname(path)
            while parent and parent not in tree.dirs:
                tree.dirs.add(parent)
                parent = posixpath.dirname(parent)
            tree.by_name.setdefault(posixpath.basename(path), []).append(path)
        for directory in tree.dirs:
            tree.by_name.setdefault(posixpath.basename(directory), []).append(directory)
        return tree

    def exists(self, path: str) -> bool:
        return path in ("", ".") or path in self.dirs or self._has_file(path)

    def _has_file(self, path: str) -> bool:
        i = bisect.bisect_left(self.files, path)
        return i < len(self.files) and self.files[i] == path

    def under(self, path: str) -> Iterator[str]:
        """Files equal to `path` or inside it (a path-component prefix)."""
        if path in ("", "."):
            yield from self.files
            return
        if self._has_file(path):
            yield path
        prefix = path.rstrip("/") + "/"
        i = bisect.bisect_left(self.files, prefix)
        while i < len(self.files) and self.files[i].startswith(prefix):
            yield self.files[i]
            i += 1

    def likely_home(self, missing: str) -> str | None:
        """Where a moved file or folder probably went: the same name elsewhere in the tree."""
        candidates = self.by_name.get(posixpath.basename(missing.rstrip("/")), [])
        if not candidates:
            return None
        # The candidate sharing the longest tail of path components with the missing path wins.
        parts = missing.strip("/").split("/")

        def shared_tail(candidate: str) -> int:
            other = candidate.split("/")
            n = 0
            while n < min(len(parts), len(other)) and parts[-1 - n] == other[-1 - n]:
                n += 1
            return n

        return max(sorted(candidates), key=shared_tail)


def _git_files(root: Path) -> list[str] | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    inside = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-prefix"], capture_output=True, text=True)
    prefix = inside.stdout.strip()
    names = [n for n in done.stdout.decode().split("\0") if n]
    return [n[len(prefix) :] if prefix and n.startswith(prefix) else n for n in names]


@dataclass(frozen=True)
class PytestConfig:
    testpaths: tuple[str, ...] = ()
    python_files: tuple[str, ...] = ("test_*.py", "*_test.py")
    norecursedirs: tuple[str, ...] = (
        "*.egg",
        ".*",
        "_darcs",
        "build",
        "CVS",
        "dist",
        "node_modules",
        "venv",
        "{arch}",
    )

    @classmethod
    def read(cls, root: Path) -> PytestConfig:
        from harness.declare.config import tomllib

        ini: dict[str, object] = {}
        pyproject = root / "pyproject.toml"
        if pyproject.exists():
            try:
                ini = tomllib.loads(pyproject.read_text()).get("tool", {}).get("pytest", {}).get("ini_options", {})
            except tomllib.TOMLDecodeError:
                ini = {}
        for name in ("pytest.ini", "tox.ini", "setup.cfg"):
            if (root / name).exists() and not ini:
                import configparser

                parser = configparser.ConfigParser()
                parser.read(root / name)
                section = "pytest" if name == "pytest.ini" or parser.has_section("pytest") else "tool:pytest"
                if parser.has_section(section):
                    ini = {k: v.split() for k, v in parser.items(section)}
        base = cls()

        def words(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = ini.get(key)
            if value is None:
                return default
            return tuple(value.split() if isinstance(value, str) else value)  # type: ignore[union-attr]

        return cls(
            words("testpaths", ()),
            words("python_files", base.python_files),
            words("norecursedirs", base.norecursedirs),
        )

    def test_files(self, tree: Tree) -> list[str]:
        roots = self.testpaths or ("",)
        found = []
        for path in (p for r in roots for p in tree.under(r)):
            name = posixpath.basename(path)
            if not any(fnmatch.fnmatch(name, pattern) for pattern in self.python_files):
                continue
            if self._excluded(path):
                continue
            found.append(path)
        return sorted(set(found))

    def _excluded(self, path: str) -> bool:
        parts = path.split("/")[:-1]
        for i, part in enumerate(parts):
            if part in SKIP_DIRS:
                return True
            for pattern in self.norecursedirs:
                if fnmatch.fnmatch(part, pattern) or ("/" in pattern and "/".join(parts[: i + 1]) == pattern):
                    return True
        return False


@dataclass
class Reach:
    """What a step's commands reach: pytest targets, ignores, scripts, and variables they set."""

    targets: list[tuple[str, str]] = field(default_factory=list)  # (path, as written)
    # Files some pytest invocation reaches: under its targets and not under its own --ignore.
    files: set[str] = field(default_factory=set)
    scripts: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (resolved path, as written)
    env: set[str] = field(default_factory=set)


def _split_commands(line: str) -> list[list[str]]:
    """A shell line as simple commands; `|`, `&&`, `||`, `;` and parentheses separate them."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token and set(token) <= set(";&|()"):
                commands.append([])
            else:
                commands[-1].append(token)
    except ValueError:  # unbalanced quotes: take what parsed
        pass
    return [c for c in commands if c]


class Resolver:
    def __init__(self, root: Path, tree: Tree, config: ProjectConfig) -> None:
        self.root, self.tree, self.config = root, tree, config

    def to_repo(self, cwd: str, path: str) -> str | None:
        """A path as the shell in `cwd` sees it, relative to the checkout; None when outside it."""
        workspace = self.config.workspace.rstrip("/")
        if path.startswith("/"):
            if path != workspace and not path.startswith(workspace + "/"):
                return None
            joined = path[len(workspace) :].lstrip("/")
        else:
            joined = posixpath.join(cwd, path)
        normal = posixpath.normpath(joined)
        return None if normal.startswith("..") else ("" if normal == "." else normal)

    def step(self, step: Step) -> Reach:
        reach = Reach(env=set(step.env))
        cwd = self.to_repo("", step.working_dir or self.config.working_dir) or ""
        env = dict(step.env)
        for line in step.commands:  # one script on the agent: `cd` and `export` carry to later lines
            cwd = self._line(line, cwd, env, reach, depth=0)
        return reach

    def _line(self, line: str, cwd: str, env: dict[str, str], reach: Reach, depth: int) -> str:
        commands = _split_commands(line)
        for i, words in enumerate(commands):
            while words and words[0] in (
                "do",
                "then",
                "else",
                "elif",
                "if",
                "while",
                "until",
                "!",
                "{",
                "time",
            ):
                words.pop(0)  # shell keywords before a command: `for …; do pytest …`
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # VAR=x cmd
                name, _, value = words.pop(0).partition("=")
                env[name] = value
                reach.env.add(name)
            if not words:
                continue
            head = posixpath.basename(words[0])
            if head == "cd" and len(words) > 1:
                cwd = self.to_repo(cwd, self._expand(words[1], env)) or cwd
            elif head == "export":
                for word in words[1:]:
                    name, _, value = word.partition("=")
                    env[name] = value
                    reach.env.add(name)
            elif head == "pytest" or (head.startswith("python") and words[1:3] == ["-m", "pytest"]):
                args = words[1:] if head == "pytest" else words[3:]
                self._pytest(args, cwd, env, reach)
            elif head == "xargs" and "pytest" in words and i > 0 and commands[i - 1][:1] == ["find"]:
                self._find_xargs(commands[i - 1], words[words.index("pytest") + 1 :], cwd, env, reach)
            elif head in ("bash", "sh") and len(words) > 1 and not words[1].startswith("-"):
                self._script(words[1], cwd, env, reach, depth)
            elif head.startswith("python") and len(words) > 1 and words[1].endswith(".py"):
                self._path(words[1], cwd, env, reach, script=True)
            elif words[0].startswith("./") and words[0].endswith(".sh"):
                self._script(words[0], cwd, env, reach, depth)
        return cwd

    def _expand(self, word: str, env: dict[str, str]) -> str:
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), word)

    def _path(self, written: str, cwd: str, env: dict[str, str], reach: Reach, script: bool = False) -> str | None:
        expanded = self._expand(written, env)
        if "$" in expanded or any(c in expanded for c in "*?["):
            return None  # not resolvable statically; not judged
        path = self.to_repo(cwd, expanded)
        if path is None:
            return None
        if not self.tree.exists(path):
            reach.missing.append((path, written))
            return None
        if script:
            reach.scripts.append(path)
        return path

    def _pytest(self, args: list[str], cwd: str, env: dict[str, str], reach: Reach) -> None:
        before = len(reach.targets)
        ignores: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            option, _, inline = arg.partition("=")
            if option in ("--ignore", "--deselect") or (arg.startswith("--ignore=") or arg.startswith("--deselect=")):
                value = inline if inline else (args[i + 1] if i + 1 < len(args) else "")
                i += 1 if inline else 2
                path = self._path(value.split("::")[0], cwd, env, reach)
                if path is not None and option == "--ignore":
                    ignores.append(path)
                continue
            if arg in PYTEST_VALUE_OPTS:
                i += 2
                continue
            if not arg.startswith("-"):
                path = self._path(arg.split("::")[0], cwd, env, reach)
                if path is not None:
                    reach.targets.append((path, arg))
                else:
                    reach.targets.extend((m, arg) for m in self._pattern(arg.split("::")[0], cwd, env))
            i += 1
        if len(reach.targets) == before and not any(not a.startswith("-") for a in args):
            reach.targets.append((cwd, "."))  # bare `pytest`: the current directory
        skipped = {f for ignore in ignores for f in self.tree.under(ignore)}
        for target, _ in reach.targets[before:]:
            reach.files.update(f for f in self.tree.under(target) if f not in skipped)

    def _pattern(self, written: str, cwd: str, env: dict[str, str]) -> list[str]:
        """A target with a variable no one can know here (`test_$m.py` in a loop) or a glob: every
        file it could name counts as reached, so the lint never calls a maybe-run test unrun."""
        expanded = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "*", self._expand(written, env))
        if "*" not in expanded and "?" not in expanded and "[" not in expanded:
            return []
        pattern = self.to_repo(cwd, expanded)
        if pattern is None:
            return []
        static = re.split(r"[*?\[]", pattern)[0].rsplit("/", 1)[0] if "/" in pattern else ""
        return [f for f in self.tree.under(static) if fnmatch.fnmatch(f, pattern) or fnmatch.fnmatch(f, pattern + "/*")]

    def _find_xargs(self, find: list[str], rest: list[str], cwd: str, env: dict[str, str], reach: Reach) -> None:
        starts = [w for w in find[1:] if not w.startswith("-")][:1] or ["."]
        pattern = find[find.index("-name") + 1] if "-name" in find and find.index("-name") + 1 < len(find) else "*"
        base = self._path(starts[0], cwd, env, reach)
        if base is None:
            return
        for path in self.tree.under(base):
            if fnmatch.fnmatch(posixpath.basename(path), pattern):
                reach.targets.append((path, f"find {starts[0]} -name {pattern}"))
                reach.files.add(path)

    def _script(self, written: str, cwd: str, env: dict[str, str], reach: Reach, depth: int) -> None:
        path = self._path(written, cwd, env, reach, script=True)
        if path is None or depth > 3:
            return
        try:
            text = (self.root / path).read_text(errors="replace")
        except OSError:
            return
        script_cwd = cwd
        for line in _logical_lines(text):
            script_cwd = self._line(line, script_cwd, env, reach, depth + 1)


def _logical_lines(text: str) -> Iterator[str]:
    """Script lines with backslash continuations joined; comments and control keywords dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        line = re.sub(r"^(then|do|else|elif|if|while|for)\s+", "", line)
        if line and not line.startswith("#"):
            yield line


def shell_gates(text: str) -> set[str]:
    """Variables a script tests to decide what runs (`if`/`elif` with -n/-z or ${VAR:-…})."""
    gates = set()
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"^(if|elif)\b", stripped) or stripped.startswith("[[") or stripped.startswith("["):
            gates.update(m.group(1) for m in SHELL_GATE.finditer(stripped))
    return gates


def python_gates(text: str) -> set[str]:
    """Variables a test module checks in skip conditions (skipif, pytest.skip, pytestmark)."""
    gates = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        window = " ".join(lines[max(0, i - 2) : i + 1])
        if "skip" in window or "pytestmark" in window:
            for match in PY_GATE.finditer(line):
                gates.add(next(g for g in match.groups() if g))
    return gates


@dataclass(frozen=True)
class Allowed:
    kind: str
    path: str | None
    variable: str | None
    step: str | None
    reason: str

    def covers(self, finding: Finding) -> bool:
        if self.kind != finding.kind or (self.step and self.step != finding.step):
            return False
        if self.variable and self.variable != finding.variable:
            return False
        if self.path:
            found = finding.path or ""
            inside = found == self.path or found.startswith(self.path.rstrip("/") + "/")
            if not (inside or fnmatch.fnmatch(found, self.path)):
                return False
        return True


def load_allowed(root: Path) -> list[Allowed]:
    from harness.errors import DeclarationError

    path = root / ALLOW_FILE
    if not path.exists():
        return []
    import yaml

    try:
        entries = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        raise DeclarationError(path, None, f"is not valid YAML ({exc}).") from None
    allowed = []
    for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS or not entry.get("reason"):
            raise DeclarationError(
                path,
                None,
                f"entry {i + 1} needs a 'kind' ({', '.join(KINDS)}) and a 'reason' (why it is fine).",
            )
        allowed.append(
            Allowed(
                entry["kind"],
                entry.get("path"),
                entry.get("variable"),
                entry.get("step"),
                str(entry["reason"]),
            )
        )
    return allowed


def lint(root: Path, areas: list[Area], config: ProjectConfig) -> tuple[list[Finding], int]:
    """Every finding not on the allow-list, and how many the allow-list accepted."""
    root = Path(root)
    tree = Tree.scan(root)
    resolver = Resolver(root, tree, config)
    findings: list[Finding] = []
    reached: set[str] = set()
    gates_checked: dict[str, list[tuple[Area, Step, set[str]]]] = {}
    for area in areas:
        rel = _rel(root, area.path)
        for base in area.steps:
            forms = {id(f): f for f in (base.on(p) for p in base.platforms)}.values()
            for step in forms:
                reach = resolver.step(step)
                for path, written in dict.fromkeys(reach.missing):
                    home = tree.likely_home(path)
                    findings.append(
                        Finding(
                            "missing-path",
                            rel,
                            step.line,
                            step.label,
                            f"{written!r} (resolved to {path or '.'}) does not exist",
                            path=path,
                            suggestion=f"moved to {home}?" if home else None,
                        )
                    )
                reached |= reach.files
                for ran in {t for t, _ in reach.targets} | set(reach.scripts):
                    for path in tree.under(ran):
                        gates_checked.setdefault(path, []).append((area, step, reach.env))
            findings.extend(_dead_dependencies(tree, rel, base))
    pytest_config = PytestConfig.read(root)
    for path in pytest_config.test_files(tree):
        if path not in reached:
            findings.append(
                Finding("unrun-test", path, 0, "", f"{path} is collected by pytest but no step runs it", path=path)
            )
    findings.extend(_unset_gates(root, gates_checked))
    allowed = load_allowed(root)
    kept = [f for f in findings if not any(a.covers(f) for a in allowed)]
    return _dedupe(kept), len(findings) - len(kept)


def _rel(root: Path, path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _dead_dependencies(tree: Tree, rel: str, step: Step) -> Iterable[Finding]:
    deps = list(step.source_file_dependencies)
    for platform in step.platforms:
        deps += [d for d in step.on(platform).source_file_dependencies if d not in deps]
    for entry in deps:
        path = entry.lstrip("!").strip().strip("/")
        if any(c in path for c in "*?[") or tree.exists(path):
            continue
        hint = next(
            (f"{path}{ext}" for ext in (".py", ".sh", ".yaml", ".yml", ".txt") if tree.exists(path + ext)),
            None,
        )
        home = hint or tree.likely_home(path)
        yield Finding(
            "dead-dependency",
            rel,
            step.line,
            step.label,
            f"source_file_dependencies entry {entry!r} matches no file, so no change ever triggers this step",
            path=path,
            suggestion=(
                f"did you mean {hint!r} (with its extension)?" if hint else f"moved to {home}?" if home else None
            ),
        )


def _unset_gates(root: Path, runs: dict[str, list[tuple[Area, Step, set[str]]]]) -> Iterable[Finding]:
    for path, steps in sorted(runs.items()):
        if path.endswith(".sh"):
            gates = shell_gates(_read(root / path))
        elif path.endswith(".py") and posixpath.basename(path).startswith(("test_", "conftest")):
            gates = python_gates(_read(root / path))
        else:
            continue
        for variable in sorted(g for g in gates if not AMBIENT.match(g)):
            if any(variable in env for _, _, env in steps):
                continue
            area, step, _ = steps[0]
            yield Finding(
                "unset-gate",
                _rel(root, area.path),
                step.line,
                step.label,
                f"{path} runs tests only when {variable} is set, and no step that runs it sets {variable}",
                path=path,
                variable=variable,
                suggestion=f"add a step (or env: {{{variable}: ...}}) that runs {path} with {variable} set",
            )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: dict[tuple[object, ...], Finding] = {}
    for f in findings:
        seen.setdefault((f.kind, f.file, f.step, f.path, f.variable), f)
    return sorted(seen.values(), key=lambda f: (f.kind, f.file, f.line, f.path or "", f.variable or ""))


def as_text(findings: list[Finding], allowed: int) -> str:
    if not findings:
        return f"gpuci lint: clean ({allowed} finding(s) accepted by {ALLOW_FILE})\n"
    lines = []
    for f in findings:
        where = f"{f.file}:{f.line}" if f.line else f.file
        step = f" [{f.step}]" if f.step else ""
        hint = f" — {f.suggestion}" if f.suggestion else ""
        lines.append(f"{where}{step} {f.kind}: {f.message}{hint}")
    lines.append(f"gpuci lint: {len(findings)} finding(s); accept one on purpose in {ALLOW_FILE} with a reason")
    return "\n".join(lines) + "\n"


def as_json(findings: list[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], indent=2) + "\n"
