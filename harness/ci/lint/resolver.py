"""Step commands resolved as a shell would run them: `cd`, `&&`, `VAR=x`, pytest targets, scripts."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from harness.ci.lint.cache import Analysis, AnalysisCache, T
from harness.ci.lint.files import Files
from harness.ci.lint.loop_items import LoopItems, find_listing, find_start
from harness.ci.lint.pytest_options import PYTEST_FLAGS, PYTEST_VALUE_OPTS, project_value_options
from harness.ci.lint.reach import Reach
from harness.ci.lint.shell_loops import FOR_HEAD, Loop, Planned, walk
from harness.ci.lint.shell_text import (
    ARRAY_EXPANSION,
    SPLIT_COMMANDS,
    WINDOWS_SEPARATOR,
    branch,
    module_pytest,
)
from harness.ci.lint.shell_values import ASSIGNMENT, ShellValues, expand
from harness.ci.lint.tree import Tree
from harness.declare.areas import Step
from harness.declare.config import ProjectConfig

STRING_COMMAND = re.compile(r"^\s*(?:[A-Z_]+=\S*\s+)*(?:pytest|torchrun|python3?(?:\.\d+)?)\s")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
PREFIX_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# A loop body that may reach a test or a script: only then does each item matter.
RUNS_SOMETHING = re.compile(r"pytest|python|torchrun|\bbash\b|\bsh\b|\.sh\b|\.py\b")
# `done < FILE` (not `< <(…)`): the loop reads FILE's lines; its name one shell word, quoted or not.
LIST_FILE = re.compile(r"""^<\s*(?!<|\()("[^"]*"|'[^']*'|[^\s;|&<>]+)""")
KEYWORDS = frozenset({"do", "then", "else", "elif", "if", "while", "until", "!", "{", "time"})
UNKNOWN = "\0unknown"  # a working directory no one can know here (`cd "$SOME_DIR"`, `cd /tmp`)
DIRECTORY_STACK = "\0pushd"  # pushd's stack, kept with the shell's variables


@dataclass(frozen=True)
class Script:
    """The script a text is read from (`here`: its path, for its own folder), and `scope`: the text whose
    assignments bound a loop's variables."""

    here: str | None = None
    scope: str | None = None


class Resolver:
    def __init__(
        self, root: Path, tree: Tree, config: ProjectConfig, files: Files, cache: AnalysisCache | None = None
    ) -> None:
        self.root, self.tree, self.config, self.files = root, tree, config, files
        self.cache = cache or AnalysisCache(None)
        self._texts: dict[str, str] = {}
        self._plans: dict[str, list[Planned]] = {}
        self._steps: dict[tuple[object, ...], Reach] = {}
        self._splits: dict[str, list[list[str]]] = {}
        self._scripts: dict[tuple[object, ...], tuple[Reach, tuple[dict[str, str], list[str]]]] = {}
        self._names: dict[str, set[str]] = {}  # per script: the names it and the scripts it runs hold
        self.value_options = PYTEST_VALUE_OPTS | project_value_options(tree, self.analyse)
        self.items = LoopItems(tree, config.workspace, self.to_repo, self.read)

    def _split(self, line: str) -> list[list[str]]:
        """A line's simple commands, split once a lint (a copy each time: callers consume them)."""
        if line not in self._splits:
            self._splits[line] = self.cache.get(SPLIT_COMMANDS, line)
        return [list(words) for words in self._splits[line]]

    def analyse(self, analysis: Analysis[T], path: str) -> T:
        """What `analysis` says of a file, from the cache where the file is unchanged (not read)."""
        return self.cache.for_path(analysis, path, self.files.fingerprint(path), lambda: self.read(path))

    def read(self, path: str) -> str:
        """A file of the tree, read once per lint however many steps and checks need it."""
        if path not in self._texts:
            self._texts[path] = self.files.read(path)
        return self._texts[path]

    def to_repo(self, cwd: str, path: str) -> str | None:
        """A path as the shell in `cwd` sees it, relative to the checkout; None when outside it."""
        workspace = self.config.workspace.rstrip("/")
        if cwd == UNKNOWN and not path.startswith("/"):
            return None
        if path.startswith("/"):
            if path != workspace and not path.startswith(workspace + "/"):
                return None
            joined = path[len(workspace) :].lstrip("/")
        else:
            joined = posixpath.join(cwd, path)
        normal = posixpath.normpath(joined)
        return None if normal.startswith("..") else ("" if normal == "." else normal)

    def step(self, step: Step) -> Reach:
        """What a step reaches; steps alike in all `_resolve` reads (a mirror) share one (read only)."""
        where = (step.working_dir, step.extra.get("no_plugin") is True, step.num_nodes > 1, step.per_node_commands)
        key = (step.commands, tuple(step.env.items()), where)
        if key not in self._steps:
            self._steps[key] = self._resolve(step)
        return self._steps[key]

    def _resolve(self, step: Step) -> Reach:
        reach = Reach(env=set(step.env))
        cwd = self.to_repo("", self._working_dir(step)) or ""
        env = dict(step.env)
        for command in step.commands:  # one script on the agent: `cd` and `export` carry to later lines
            if "\n" not in command:
                # A plain YAML scalar folds `\`-continued lines into `\ `, and generators put commands
                # in a double-quoted string, where `\ ` and `\"` are a space and a quote.
                command = command.replace("\\ ", " ").replace('\\"', '"')
                # A Windows agent's paths: `bash .buildkite\\steps\\tests.sh` names .buildkite/steps/tests.sh.
                command = WINDOWS_SEPARATOR.sub("/", command)
            cwd = self._text(command, cwd, env, reach, depth=0)
        return reach

    def _text(
        self, text: str, cwd: str, env: dict[str, str], reach: Reach, depth: int, script: Script = Script()
    ) -> str:
        """Lines run in order. Lines inside a multi-line quoted string (`docker exec c bash -c "` …)
        run elsewhere, in a container whose working directory no one knows here: what they reach
        counts, but a path they name that is not in the tree is not called missing. A loop runs its
        body once per item; `script.scope` is the script whose assignments bound a loop's variables."""
        here = script.here
        starts: list[tuple[str, str]] = []  # open `if`/`case` blocks and the folder each began in
        for raw, loop, inside, line in self._plan(text):
            before, stale = len(reach.missing), len(reach.stale)
            if not inside:
                cwd = branch(raw, cwd, starts)  # each branch of an if or case starts where the block did
            if loop is not None:
                moved = self._loop(loop, cwd, env, reach, depth, Script(here, script.scope or text))
            else:
                moved = self._line(line, cwd, env, reach, depth, here)
            if inside:
                del reach.missing[before:]
                del reach.stale[stale:]
            else:
                cwd = moved
        return cwd

    def _plan(self, text: str) -> list[Planned]:
        """How `_text` walks a text (shell_loops.walk): a script walked again is not read again."""
        if text not in self._plans:
            self._plans[text] = walk(text)
        return self._plans[text]

    def _loop(self, loop: Loop, cwd: str, env: dict[str, str], reach: Reach, depth: int, script: Script) -> str:
        """The body once per item the loop iterates over. Items no one can bound: the body runs once
        with its variable unknown, so what it names reaches nothing and is reported unresolved."""
        here, scope = script.here, script.scope or ""
        items: list[str] | None = None
        if loop.before:
            cwd = self._line(loop.before.rstrip("|&; "), cwd, env, reach, depth, here)
        if not (RUNS_SOMETHING.search(loop.body) and re.search(rf"\$\{{?{loop.name}\b", loop.body)):
            items = [""]  # the item changes nothing the body reaches (ports, retries, models): once
        elif loop.kind == "for":
            items = self.items.of_for(loop.items, scope, cwd, env)
        elif loop.before.endswith("|") and (feeding := self.cache.get(SPLIT_COMMANDS, loop.before.rstrip("| "))):
            items = self.items.of_command(feeding[-1], cwd, env)  # find … | while read f
        elif (source := re.match(r"^<\s*<\((.*)\)", loop.after)) is not None:
            commands = self.cache.get(SPLIT_COMMANDS, source.group(1))  # done < <(find …)
            items = self.items.of_command(commands[-1], cwd, env) if commands else None
        elif (listed := LIST_FILE.match(loop.after)) is not None:  # done < tests/list.txt
            items = self.items.of_list_file(listed.group(1).strip("\"'"), cwd, env)
        for item in [None] if items is None else items:
            if item is None or item == "":
                env.pop(loop.name, None)
            else:
                env[loop.name] = item
            cwd = self._text(loop.body, cwd, env, reach, depth, script)
        if loop.after.startswith(("|", "&&", ";")):
            cwd = self._line(loop.after.lstrip("|&; "), cwd, env, reach, depth, here)
        return cwd

    def _working_dir(self, step: Step) -> str:
        """Where a step's commands start. One that runs on the agent itself (`no_plugin: true`) starts
        in the agent's checkout, the repository's root, unless it names a working_dir. A multi-node
        one whose command starts the nodes itself runs from the root (its working_dir is the nodes');
        one with a list of commands per node runs each list in the working dir."""
        on_agent = step.extra.get("no_plugin") is True and not step.working_dir
        if on_agent or (step.num_nodes > 1 and not step.per_node_commands):
            return self.config.workspace
        return step.working_dir or self.config.working_dir

    def _line(self, line: str, cwd: str, env: dict[str, str], reach: Reach, depth: int, here: str | None = None) -> str:
        assignment = ASSIGNMENT.match(line.strip())
        if assignment:  # NAME="$(cd "$(dirname "$0")/.." && pwd)": a path a script finds itself by
            value = ShellValues(self.config.workspace, cwd, here, env).value(assignment["value"])
            if value is None:
                env.pop(assignment["name"], None)
            else:
                env[assignment["name"]] = value
            return cwd
        commands = self._split(line)
        for i, words in enumerate(commands):
            while words and words[0] in KEYWORDS:
                words.pop(0)  # shell keywords before a command: `for …; do pytest …`
            if words[:2] in (["uv", "run"], ["poetry", "run"], ["pipenv", "run"], ["hatch", "run"]):
                del words[:2]  # a runner's `run`: the command after it runs
            while words and PREFIX_ASSIGNMENT.match(words[0]):  # VAR=x cmd
                name, _, value = words.pop(0).partition("=")
                env[name] = value
                reach.env.add(name)
            if words and words[0] in ("env", "exec", "nohup"):  # `env "${cfg[@]}" A=1 bash x.sh`: runs x.sh
                words.pop(0)
                while words and (words[0].startswith("-") or "=" in words[0] or ARRAY_EXPANSION.match(words[0])):
                    words.pop(0)
            if not words:
                continue
            head = words[0].rpartition("/")[2]  # its basename
            if head in ("cd", "pushd"):
                target = self._directory(line, words, cwd, env, here)
                if head == "pushd":
                    env[DIRECTORY_STACK] = env.get(DIRECTORY_STACK, "") + cwd + "\n"
                # A folder outside the checkout, or one only the machine knows: later relative paths
                # are not judged. "" is the repository's root, not "stay".
                cwd = UNKNOWN if target is None else target
            elif head == "popd":
                stack = env.get(DIRECTORY_STACK, "").split("\n")[:-1]
                cwd = stack.pop() if stack else UNKNOWN
                env[DIRECTORY_STACK] = "".join(d + "\n" for d in stack)
            elif head == "export":
                for word in words[1:]:
                    name, _, value = word.partition("=")
                    env[name] = value
                    reach.env.add(name)
            elif head == "pytest":
                self._pytest(words[1:], cwd, env, reach)
            elif (start := module_pytest(words)) is not None:  # python3 -u -m pytest, "$VENV/python" -m, coverage
                self._pytest(words[start:], cwd, env, reach)
            elif head == "xargs" and "pytest" in words and i > 0 and commands[i - 1][:1] == ["find"]:
                self._find_xargs(commands[i - 1], words[words.index("pytest") + 1 :], cwd, env, reach)
            elif head == "find" and "-exec" in words and words[words.index("-exec") + 1 :][:1] == ["pytest"]:
                at = words.index("-exec")  # find DIR -name 'test_*.py' -exec pytest -v {} \;
                self._find_xargs(words[:at], words[at + 2 :], cwd, env, reach)
            elif head in ("bash", "sh") and len(words) > 1 and not words[1].startswith("-"):
                self._script(words[1], cwd, env, reach, depth)
            elif head.startswith("python") and len(words) > 1 and words[1].endswith(".py"):
                self._run_file(words[1], cwd, env, reach)
            elif head == "torchrun":  # torchrun [--opts …] FILE: the file runs, in every rank
                target = next((w for w in words[1:] if w.endswith(".py") and not w.startswith("-")), None)
                if target:
                    self._run_file(target, cwd, env, reach)
            elif words[0].endswith(".sh") and "/" in words[0]:  # ./run.sh, .buildkite/scripts/test.sh
                self._script(words[0], cwd, env, reach, depth)
            string_cwd = cwd
            for word in words[1:]:
                # A folder of the checkout handed to a runner before its commands (`run-multi-node-test.sh
                # /vllm-workspace/tests 2 2 IMAGE "pytest distributed/test_x.py" …`): they run there.
                if word.startswith(self.config.workspace.rstrip("/") + "/") and not STRING_COMMAND.match(word):
                    folder = self.to_repo(cwd, word)
                    if folder is not None and (folder in ("", ".") or folder in self.tree.dirs):
                        string_cwd = folder
                # A command passed as a string (`bash -c "pytest x"`, `run_and_track "python3 -m pytest y"`)
                # runs somewhere: what it reaches counts; a path it names is not judged.
                if depth < 4 and (STRING_COMMAND.match(word) or FOR_HEAD.search(word)):
                    before, stale = len(reach.missing), len(reach.stale)  # `bash -c "for f in …; done"` too
                    self._text(word, string_cwd, dict(env), reach, depth + 1, Script(here))
                    del reach.missing[before:]
                    del reach.stale[stale:]
        return cwd

    def _directory(self, line: str, words: list[str], cwd: str, env: dict[str, str], here: str | None) -> str | None:
        """Where `cd DIR` / `pushd DIR` goes, as a repository path; None when it cannot be known."""
        if len(words) < 2 or words[1] in ("-", "~") or words[1].startswith("~/"):
            return None
        written = re.match(r"^\s*(?:cd|pushd)\s+(?:--\s+)?(.+?)\s*(?:&&.*|;.*|\|\|.*)?$", line)
        if written and "$(" in written.group(1):  # cd "$(dirname "$0")/..": evaluated as the script would
            value = ShellValues(self.config.workspace, cwd, here, env).value(written.group(1))
            return None if value is None else self.to_repo(cwd, value)
        target = expand(words[1], env)
        return None if "$" in target else self.to_repo(cwd, target)

    def _path(self, written: str, cwd: str, env: dict[str, str], reach: Reach, script: bool = False) -> str | None:
        expanded = expand(written, env)
        if "$" in expanded or any(c in expanded for c in "*?["):
            return None  # not resolvable statically; not judged
        path = self.to_repo(cwd, expanded)
        if path is None or not self.tree.exists(path):
            # An absolute path may be another container's mount of the checkout (`/workspace/vllm/tests/
            # x.py`): the file its tail names. Outside the workspace it is never called missing.
            mounted = self._mounted(expanded) if expanded.startswith("/") else None
            if mounted is None:
                if path is not None:
                    reach.missing.append((path, written))
                return None
            path = mounted
        if script:
            reach.scripts.append(path)
        return path

    def _mounted(self, absolute: str) -> str | None:
        parts = absolute.strip("/").split("/")
        for i in range(1, len(parts) - 1):  # a tail of two or more components
            tail = "/".join(parts[i:])
            if self.tree.exists(tail):
                return tail
        return None

    def _run_file(self, written: str, cwd: str, env: dict[str, str], reach: Reach) -> None:
        """`python3 FILE` or `torchrun FILE`: the file runs (a test run this way is not unrun)."""
        path = self._path(written, cwd, env, reach, script=True)
        if path is not None:
            reach.files.add(path)

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
                written = value.split("::")[0]
                if option == "--deselect" and self.tree.exists(expand(written, env)):
                    continue  # a node id, relative to pytest's rootdir (the checkout), not the cwd
                before = len(reach.missing)
                path = self._path(written, cwd, env, reach)
                # Not there: pytest ignores nothing and no coverage is lost; a stale option, not a missing test.
                reach.stale += [(p, w, option) for p, w in reach.missing[before:]]
                del reach.missing[before:]
                if path is not None and option == "--ignore":
                    ignores.append(path)
                continue
            if arg in self.value_options:
                i += 2
                continue
            unknown = arg.startswith("--") and "=" not in arg and arg not in PYTEST_FLAGS
            if unknown and i + 1 < len(args) and not args[i + 1].startswith("-"):
                reach.after_unknown[args[i + 1]] = arg
            if not arg.startswith("-") and "$" in expand(arg.split("::")[0], env):
                reach.unresolved.append(arg)  # `pytest $f` with f unknown here: it reaches nothing
            elif not arg.startswith("-"):
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
        """A glob as a target (`pytest tests/a/*.py`): the files it names."""
        expanded = expand(written, env)
        if "$" in expanded:
            return []
        if "*" not in expanded and "?" not in expanded and "[" not in expanded:
            return []
        pattern = self.to_repo(cwd, expanded)
        if pattern is None:
            return []
        static = re.split(r"[*?\[]", pattern)[0].rsplit("/", 1)[0] if "/" in pattern else ""
        return [f for f in self.tree.under(static) if fnmatch.fnmatch(f, pattern) or fnmatch.fnmatch(f, pattern + "/*")]

    def _find_xargs(self, find: list[str], rest: list[str], cwd: str, env: dict[str, str], reach: Reach) -> None:
        """`find DIR [-maxdepth N] -name P [-not -name Q | ! -name Q] | xargs pytest`: the files find lists."""
        start = find_start(find)
        base = self._path(start, cwd, env, reach)
        if base is None:
            return
        for path in find_listing(self.tree, find, base):
            reach.targets.append((path, f"find {start}"))
            reach.files.add(path)

    def _script(self, written: str, cwd: str, env: dict[str, str], reach: Reach, depth: int) -> None:
        path = self._path(written, cwd, env, reach, script=True)
        if path is None or depth > 3:
            return
        # Many steps run one script from the same folder with the same variables: walked once. The
        # variables that count are those it or a script it runs names (a loop's item it never reads
        # is no reason to walk it again).
        names = self._names.get(path)
        key = (path, cwd, tuple(sorted((k, v) for k, v in env.items() if names is None or k in names)), depth)
        if key not in self._scripts:
            ran, after = Reach(), dict(env)
            self._text(self.read(path), cwd, after, ran, depth + 1, Script(here=path))
            names = {DIRECTORY_STACK}.union(*(set(IDENTIFIER.findall(self.read(p))) for p in {path, *ran.scripts}))
            self._names[path] = names
            changed = {k: v for k, v in after.items() if env.get(k) != v}
            key = (path, cwd, tuple(sorted((k, v) for k, v in env.items() if k in names)), depth)
            self._scripts[key] = (ran, (changed, [k for k in env if k not in after]))
        ran, (changed, removed) = self._scripts[key]
        reach.targets += ran.targets
        reach.files |= ran.files
        reach.scripts += ran.scripts
        reach.missing += ran.missing
        reach.after_unknown.update(ran.after_unknown)
        reach.env |= ran.env
        reach.unresolved += ran.unresolved
        reach.stale += ran.stale
        env.update(changed)
        for name in removed:
            env.pop(name, None)
