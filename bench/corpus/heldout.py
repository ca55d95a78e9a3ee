"""Held-out check of `gpuci lint`'s unrun tests against an independent listing, on commits never used here.

From the engine project's mirror (manifest.toml's first project), 10 commits are drawn at random, one
from each of 10 of the 12 month-long bins before its newest commit (a fixed seed, so the draw is not
chosen by whoever runs it), skipping commits the manifest names and those earlier draws took (they
were looked at while the lint and this listing were worked on: not held out any more); cases the issue names (a hardware
script's loop, a unittest module whose tests take `@patch` mocks) are added by commit. Each commit's
tree is exported, `gpuci lint` runs on it as precision.py runs it, and its unrun-test findings are
compared with a listing made here WITHOUT the lint's code:

- the pipeline YAML files are read plainly (steps' `commands`, `working_dir`), and so are the scripts
  the commands run (`bash x.sh`) and the hardware scripts run from outside them;
- commands are read line by line: `cd`, `pytest`/`python -m pytest` targets and `--ignore`,
  `python x.py`, `find … | xargs pytest`, and `for`/`while read` loops, spelled out item by item
  (globs with Python's glob, lists, `$(find …)`), the loop variable substituted in the body;
- the test files are those pytest collects by its default rules (`test_*.py`, `*_test.py`, not under
  `.`-folders) that define a test function or Test class, less scripts (a `__main__` block and every
  test needing an argument that no fixture defined in the tree, parametrize, `mock.patch` or `@given`
  gives).

Writes bench/results/lint-heldout.json: per commit, the two counts, lint-only paths (false findings
unless the listing is wrong there) and listing-only paths (tests the lint misses).

    python bench/corpus/heldout.py [--mirror-root /work/.mirror] [--seed 35]
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import fnmatch
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from gather import export  # noqa: E402

# Commits drawn by earlier runs (by seed): looked at while the lint and this listing were worked on, so
# no longer held out; a new draw never takes them.
EARLIER_DRAWS = {
    35: [
        "6597d7a4566d", "046118b93858", "a1946c9f61f9", "042da732445f", "ee2e69d6cda8", "4c82b6fac770",
        "d6b61e5166ac", "93726b2a1c76", "7198940b395e", "66ecfd05681b", "f1a5adddb815", "f12b80c6efa1",
    ],
}  # fmt: skip
# The cases the issue names, by commit: both must be in the held-out set.
CASES = {
    "ff0e59d83a287c3d749b02e8b6a43f31bc856753": "loop: run-neuron-test.sh runs `for f in …/2_core/*.py; pytest $f`",
    "1fb0209bb": "decorators: tests/rocm/aiter/test_mla_fp8_support_check.py, @patch mocks as parameters",
}
# Disagreements read by hand in the project's files: tests only the listing calls unrun, which a step
# does run, by a construct this listing does not follow. Kept apart from the comparison ("equal" stays
# strict): a path here counts as agreed only at the commit it was read at, with the reason.
NIXL = "tests/v1/kv_connector/nixl_integration/"
NIXL_WHY = (
    'a step runs the nixl script that runs it: config_sweep_*.sh runs its test script as `bash "${SCRIPT}"` '
    'after `env "${cfg_parts[@]}"`, and run_*_test.sh name the module as "${GIT_ROOT}"/tests/… with '
    "GIT_ROOT=${GIT_ROOT:-$(cd … && pwd -P)} over `\\`-continued lines; the listing follows neither"
)
READ_BY_HAND = {
    "5e5a7eb16f12": (
        [f"tests/compile/{p}.py" for p in (
            "fullgraph/test_full_cudagraph", "fullgraph/test_multimodal_compile", "fullgraph/test_multiple_graphs",
            "fullgraph/test_simple", "fullgraph/test_toy_llama", "test_aot_compile", "test_config", "test_decorator",
            "test_functionalization", "test_fusion", "test_graph_partition", "test_noop_elimination",
            "test_pass_manager", "test_qk_norm_rope_fusion",
        )],
        "run from tests/ by `find compile/ -maxdepth 1 -name 'test_*.py' -exec pytest -s -v {} \\;` and `find "
        "compile/fullgraph/ -name 'test_*.py' -not -name 'test_full_graph.py' -exec …` (test-pipeline.yaml:453, "
        ":467); the listing reads `find | xargs pytest`, not `find -exec`",
    ),
    "bcfdadb1bc4d": ([NIXL + "test_accuracy.py", NIXL + "test_spec_decode_acceptance.py"], NIXL_WHY),
    "6dc949140693": (
        [NIXL + f"test_{t}.py" for t in ("accuracy", "multi_connector_edge_cases", "spec_decode_acceptance")],
        NIXL_WHY,
    ),
    "d98cbf472b65": (
        [NIXL + f"test_{t}.py" for t in ("accuracy", "multi_connector_edge_cases", "spec_decode_acceptance")],
        NIXL_WHY,
    ),
    "978de8335305": (
        [NIXL + f"test_{t}.py" for t in ("accuracy", "mamba_prefix_cache", "multi_connector_edge_cases",
                                         "spec_decode_acceptance")],
        NIXL_WHY,
    ),
    "9a4fd57cac19": (
        [NIXL + f"test_{t}.py" for t in ("accuracy", "edge_cases", "mamba_prefix_cache", "multi_connector_edge_cases",
                                         "spec_decode_acceptance")],
        NIXL_WHY,
    ),
}  # fmt: skip
VALUE_OPTIONS = {
    "-k", "-m", "-c", "-p", "-o", "-n", "-W", "-r", "--ignore", "--ignore-glob", "--deselect", "--rootdir",
    "--junitxml", "--junit-xml", "--durations", "--maxfail", "--timeout", "--dist", "--confcutdir", "--basetemp",
    "--log-level", "--tb", "--import-mode", "--cov", "--reruns", "--reruns-delay", "--capture", "--count",
    "--shard-id", "--num-shards", "--forked", "--model", "--metric", "--tp-size", "--config", "--config-list-file",
}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------- the independent listing


class Listing:
    def __init__(self, root: Path, workspace: str) -> None:
        self.root, self.workspace = root, workspace.rstrip("/")
        self.reached: set[str] = set()
        self.files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)
        self.fileset = set(self.files)

    def repo_path(self, cwd: str, word: str) -> str | None:
        """A path as written, as a path of the tree (None: outside it, or not knowable)."""
        if "$" in word:
            return None
        if word.startswith("/"):
            if word == self.workspace or word.startswith(self.workspace + "/"):
                rel = word[len(self.workspace) :].lstrip("/")
            else:  # another container's mount of the checkout: the longest tail that exists
                parts = word.strip("/").split("/")
                rel = next(
                    ("/".join(parts[i:]) for i in range(1, len(parts)) if self._exists_glob("/".join(parts[i:]))), None
                )
                if rel is None:
                    return None
        else:
            rel = os.path.normpath(os.path.join(cwd, word)) if cwd else os.path.normpath(word)
        rel = os.path.normpath(rel)
        return "" if rel == "." else None if rel.startswith("..") else rel

    def _exists_glob(self, rel: str) -> bool:
        return bool(self.glob(rel)) if any(c in rel for c in "*?[") else (self.root / rel).exists()

    def glob(self, rel: str) -> list[str]:
        import glob as globbing

        return sorted(str(Path(p).relative_to(self.root)) for p in globbing.glob(str(self.root / rel)))

    def under(self, rel: str) -> list[str]:
        if rel in ("", "."):
            return self.files
        if rel in self.fileset:
            return [rel]
        return [f for f in self.files if f.startswith(rel.rstrip("/") + "/")]

    # -- shell, read plainly
    def run_text(self, text: str, cwd: str, env: dict[str, str], depth: int = 0) -> str:
        text = text.replace("\\$", "$").replace('\\"', '"')
        text = re.sub(r"\\\n", " ", text).replace("\\ ", " ")  # a folded YAML scalar keeps `\ ` between lines
        text = self.unroll(text, cwd, env)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cwd = self.run_line(line, cwd, env, depth)
        return cwd

    def unroll(self, text: str, cwd: str, env: dict[str, str]) -> str:
        """for/while-read loops spelled out: the body once per item, the variable substituted."""
        for _ in range(20):
            loop = re.search(
                r"for\s+(\w+)\s+in\s+([^;\n]*?)\s*(?:;|\n)\s*do\b((?:(?!\bdone\b|\bfor\s+\w+\s+in\b).)*?)\bdone\b",
                text,
                re.S,
            )
            read = re.search(
                r"(find\s[^|\n]*?)\|\s*while\s+(?:IFS=\S*\s+)?read\s+(?:-r\s+)?(\w+)\s*;\s*do\b(.*?)\bdone\b",
                text,
                re.S,
            )
            if loop:
                name, items, body = loop.groups()
                values = self.items(items, cwd, env)
                start, end = loop.span()
            elif read:
                finder, name, body = read.groups()
                values = self.find(finder, cwd)
                start, end = read.span()
            else:
                return text
            bodies = [re.sub(rf"\$\{{?{name}\}}?(?!\w)", v, body) for v in values]
            text = text[:start] + "\n" + "\n".join(bodies) + "\n" + text[end:]
        return text

    def items(self, words: str, cwd: str, env: dict[str, str]) -> list[str]:
        found = []
        for word in shlex.split(words.replace("$(", " $(")) if "$(" not in words else [words]:
            if word.startswith("$(find"):
                found += self.find(word[2:].rstrip(")"), cwd)
                continue
            word = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), word)
            rel = self.repo_path(cwd, word)
            if rel is not None and any(c in rel for c in "*?["):
                found += ["/" + self.workspace.strip("/") + "/" + p for p in self.glob(rel)]
            else:
                found += word.split()
        return found

    def find(self, command: str, cwd: str) -> list[str]:
        words = shlex.split(command)
        start = next((w for w in words[1:] if not w.startswith("-")), ".")
        names = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-name" and words[i - 1] not in ("-not", "!")]
        rel = self.repo_path(cwd, start)
        if rel is None:
            return []
        return [
            "/" + self.workspace.strip("/") + "/" + f
            for f in self.under(rel)
            if all(fnmatch.fnmatch(os.path.basename(f), n) for n in names)
        ]

    def run_line(self, line: str, cwd: str, env: dict[str, str], depth: int) -> str:
        for part in re.split(r"&&|\|\||;|\|(?!\|)", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                words = part.replace('"', "").replace("'", "").split()
            while words and words[0] in ("do", "then", "else", "time", "{", "(", "!", "if", "while", "env", "exec"):
                words.pop(0)
            while words and re.match(r"^\w+=", words[0]):
                name, _, value = words.pop(0).partition("=")
                env[name] = value
            if not words:
                continue
            head = os.path.basename(words[0])
            if head == "export":
                for w in words[1:]:
                    name, _, value = w.partition("=")
                    env[name] = value
            elif head == "cd" and len(words) > 1:
                rel = self.repo_path(cwd, re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), words[1]))
                cwd = rel if rel is not None else "\0unknown"
            elif head == "pytest":
                self.pytest(words[1:], cwd, env)
            elif "-m" in words[:4] and "pytest" in words[:5]:
                self.pytest(words[words.index("pytest") + 1 :], cwd, env)
            elif (head.startswith("python") and len(words) > 1 and words[1].endswith(".py")) or head == "torchrun":
                script = next((w for w in words[1:] if w.endswith(".py")), "")
                rel = self.repo_path(cwd, script) if script else None
                if rel:
                    self.reached.add(rel)
            elif (head in ("bash", "sh") and len(words) > 1 and words[1].endswith(".sh")) or head.endswith(".sh"):
                script = words[1] if head in ("bash", "sh") else words[0]
                rel = self.repo_path(cwd, script)
                if rel and rel in self.fileset and depth < 4:
                    self.run_text((self.root / rel).read_text(errors="replace"), cwd, dict(env), depth + 1)
            elif head == "xargs" and "pytest" in words:
                pass  # handled with its find, below
            # `find DIR -name P | xargs pytest` / `-exec pytest`
        if "xargs" in line and "pytest" in line and "find " in line:
            finder = line[line.index("find ") : line.index("|", line.index("find "))]
            self.reached.update(self.repo_path("", f) or "" for f in self.find(finder, cwd))
        # A command passed as a string: `bash -c "pytest …"`.
        for inner in re.findall(r"\"((?:\w+=\S*\s+)*(?:pytest|python3? -m pytest)[^\"]*)\"", line):
            self.run_line(inner, cwd, dict(env), depth + 1)
        return cwd

    def pytest(self, args: list[str], cwd: str, env: dict[str, str]) -> None:
        targets, ignores, i = [], [], 0
        while i < len(args):
            arg = args[i]
            option, eq, value = arg.partition("=")
            if option == "--ignore":
                value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
                rel = self.repo_path(cwd, value)
                if rel is not None:
                    ignores.append(rel)
                i += 1 if eq else 2
                continue
            if arg in VALUE_OPTIONS:
                i += 2
                continue
            if not arg.startswith("-"):
                word = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), arg.split("::")[0])
                # A script's own root variable before a path (`"${GIT_ROOT}"/tests/x.py`): from the root.
                word = re.sub(r"^\$\{?\w+\}?/(?=(tests|examples|benchmarks)/)", self.workspace + "/", word)
                rel = self.repo_path(cwd, word) if cwd != "\0unknown" or word.startswith("/") else None
                if rel is not None:
                    targets += self.glob(rel) if any(c in rel for c in "*?[") else [rel]
            i += 1
        if not targets and not any(not a.startswith("-") for a in args) and cwd != "\0unknown":
            targets = [cwd]
        for target in targets:
            for f in self.under(target):
                if not any(f == g or f.startswith(g.rstrip("/") + "/") for g in ignores):
                    self.reached.add(f)

    # -- what pytest collects
    def fixtures(self) -> set[str]:
        names = {"self", "cls", "request", "tmp_path", "tmpdir", "monkeypatch", "capsys", "caplog", "mocker"}
        names |= {"tmp_path_factory", "pytestconfig", "capfd", "recwarn", "benchmark", "event_loop", "worker_id"}
        for f in self.files:
            if f.endswith(".py") and (os.path.basename(f) == "conftest.py" or "/fixtures" in f or "plugin" in f):
                text = (self.root / f).read_text(errors="replace")
                names |= set(re.findall(r"@pytest\.fixture[^\n]*\n(?:\s*@[^\n]*\n)*\s*(?:async\s+)?def\s+(\w+)", text))
                names |= set(re.findall(r"fixture\([^)]*name=[\"'](\w+)", text))
        return names

    def collected(self) -> list[str]:
        fixtures = self.fixtures()
        out = []
        for f in self.files:
            name = os.path.basename(f)
            if not (fnmatch.fnmatch(name, "test_*.py") or fnmatch.fnmatch(name, "*_test.py")):
                continue
            if any(p.startswith(".") or p in ("build", "dist", "node_modules", "venv") for p in f.split("/")[:-1]):
                continue
            text = (self.root / f).read_text(errors="replace")
            if not re.search(r"^\s*(?:async\s+)?def test|^class Test", text, re.M):
                continue
            if "__main__" in text and self.script(text, fixtures):
                continue
            out.append(f)
        return out

    def script(self, text: str, fixtures: set[str]) -> bool:
        try:
            module = ast.parse(text)
        except SyntaxError:
            return False
        if not any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in module.body):
            return False
        given = set(re.findall(r"parametrize\(\s*[\"']([^\"']+)[\"']", text))
        given = {n.strip() for g in given for n in g.split(",")} | fixtures
        tests = [n for n in ast.walk(module) if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
        if not tests:
            return False
        for test in tests:
            args = [a.arg for a in test.args.args][: len(test.args.args) - len(test.args.defaults)]
            patches = sum(
                1
                for d in test.decorator_list
                if isinstance(d, ast.Call) and re.search(r"patch(\.object)?$", ast.unparse(d.func)) and len(d.args) < 2
            )
            hypo = sum(
                len(d.args) for d in test.decorator_list if isinstance(d, ast.Call) and "given" in ast.unparse(d)
            )
            if args and args[0] in ("self", "cls"):
                args = args[1:]
            args = args[patches:]
            args = args[: len(args) - hypo] if hypo else args
            if all(a in given for a in args):
                return False  # this test runs: the module is tests
        return True


def steps_of(root: Path, declarations: list[str], default_dir: str, workspace: str) -> list[tuple[str, str]]:
    """(commands as one text, working dir) of every step the declared pipeline files hold."""
    out: list[tuple[str, str]] = []
    for entry in declarations:
        path, _, _platform = entry.partition(":")
        path, at, _start = path.partition("@")
        where = root / path
        files = sorted(where.rglob("*.y*ml")) if where.is_dir() else [where] if where.is_file() else []
        for file in files:
            try:
                data = yaml.safe_load(file.read_text())
            except yaml.YAMLError:
                continue
            for step in _steps(data):
                commands = step.get("commands", step.get("command", []))
                if isinstance(commands, str):
                    commands = [commands]
                flat = [c for item in commands for c in (item if isinstance(item, list) else [item])]
                text = "\n".join(c for c in flat if isinstance(c, str))
                on_agent = step.get("no_plugin") is True  # runs in the agent's checkout, from its root
                wd = step.get("working_dir") or (workspace if at or on_agent else default_dir)
                out.append((text, str(wd)))
    return out


def _steps(data: object) -> list[dict]:
    found: list[dict] = []
    if isinstance(data, dict):
        if "commands" in data or "command" in data:
            found.append(data)
        for value in data.values():
            if isinstance(value, (list, dict)):
                found += _steps(value)
    elif isinstance(data, list):
        for item in data:
            found += _steps(item)
    return found


def independent_unrun(root: Path, project: dict) -> list[str]:
    workspace = project.get("workspace", "/workspace")
    listing = Listing(root, workspace)
    declarations = project["declarations"]
    for text, wd in steps_of(root, declarations, project.get("default_working_dir", workspace), workspace):
        cwd = listing.repo_path("", wd)
        listing.run_text(text, cwd if cwd is not None else "", {})
    for pattern in project.get("external_scripts", []):
        for script in listing.glob(pattern):
            listing.run_text((root / script).read_text(errors="replace"), "", {})
    return sorted(set(listing.collected()) - listing.reached)


# ---------------------------------------------------------------- the draw and the comparison


def draw(repo: Path, used: set[str], seed: int, count: int = 10) -> list[tuple[str, str]]:
    """`count` commits of the 12 month-long bins before the newest commit, one per bin, the bins
    and the commits drawn with `seed` (so the draw is not chosen by whoever runs it); commits in
    `used` (the manifest's, earlier draws') are never drawn."""
    newest = dt.datetime.fromtimestamp(int(git(repo, "log", "-1", "--format=%ct", "HEAD").strip()), dt.timezone.utc)
    rng = random.Random(seed)
    taken = {u[:12] for u in used}
    bins = []
    for month in range(12, 0, -1):
        start, end = newest - dt.timedelta(days=30 * month), newest - dt.timedelta(days=30 * (month - 1))
        listed = git(
            repo, "rev-list", "--first-parent", f"--since={start.isoformat()}", f"--until={end.isoformat()}", "HEAD"
        )
        commits = [c for c in listed.split() if c[:12] not in taken]
        if commits:
            bins.append((rng.choice(commits), f"bin {start.date()}..{end.date()}"))
    chosen = sorted(rng.sample(range(len(bins)), min(count, len(bins))))
    return [bins[i] for i in chosen]


def lint_unrun(tree: Path, project: dict, commit: str, cache: Path) -> tuple[list[str], dict[str, int], float]:
    from precision import settings

    args = [sys.executable, "-m", "harness", "lint", "--root", str(tree), "--format", "json"]
    args += settings(tree, project, commit)
    started = time.perf_counter()
    env = {"PATH": "/usr/bin:/bin", "GPUCI_CACHE_DIR": str(cache)}  # shared by the commits: as a user's
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1) or "Traceback" in done.stderr:
        raise SystemExit(f"heldout: lint failed on {tree}:\n{done.stderr[-2000:]}")
    findings = json.loads(done.stdout or "[]")
    kinds: dict[str, int] = {}
    for f in findings:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    return sorted(f["path"] for f in findings if f["kind"] == "unrun-test"), kinds, seconds


def cold_run(tree: Path, project: dict, commit: str, code: Path) -> tuple[str, float]:
    """`lint --no-cache` of the gpuci whose code is at `code` (a fresh interpreter, as a user runs
    it): its output (findings, warnings, exit code) and its CPU seconds, git's included."""
    import resource

    from precision import settings

    args = [sys.executable, "-m", "harness", "lint", "--root", str(tree), "--format", "json", "--no-cache"]
    args += settings(tree, project, commit)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(args, capture_output=True, text=True, cwd=code, env={"PATH": "/usr/bin:/bin"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return f"{done.returncode}\n{done.stdout}\n{done.stderr}", cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.toml")
    parser.add_argument("--mirror-root", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--seed", type=int, default=36)
    parser.add_argument("--count", type=int, default=10, help="commits drawn, one per month-long bin")
    parser.add_argument("--only", nargs="*", help="these commits only (a quick look; the result is not written)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lint-heldout.json")
    parser.add_argument(
        "--previous", type=Path, help="a checkout of the previous release: each tree's cold CPU and findings beside it"
    )
    args = parser.parse_args(argv)
    manifest = tomllib.loads(args.manifest.read_text())
    project = manifest["project"][0]
    repo = next(
        (args.mirror_root / r.replace("/", "+") / "repo" for r in [project["repo"], *project.get("mirrors", [])]
         if (args.mirror_root / r.replace("/", "+") / "repo").exists()),
        None,
    )  # fmt: skip
    if repo is None:
        raise SystemExit(f"heldout: no mirror of {project['repo']} under {args.mirror_root}")
    used = {c for p in manifest["project"] for c in p.get("commits", [])}
    earlier_draws = {c for d in EARLIER_DRAWS.values() for c in d}
    commits = draw(repo, used | earlier_draws, args.seed, args.count)
    commits += [(git(repo, "rev-parse", c).strip(), why) for c, why in CASES.items()]
    if args.only:
        commits = [(git(repo, "rev-parse", c).strip(), "asked for") for c in args.only]
    # Commits already compared with this seed are kept (a long run may be resumed).
    earlier = json.loads(args.out.read_text()) if args.out.exists() and not args.only else {}
    done_before = (
        {r["commit"]: r for r in earlier.get("commits", [])}
        if earlier.get("summary", {}).get("seed") == args.seed
        else {}
    )
    results, skipped = [], []
    cache = Path(tempfile.mkdtemp(prefix="gpuci-heldout-cache-"))
    for commit, why in commits:
        if commit in done_before:
            results.append(done_before[commit])
            continue
        with tempfile.TemporaryDirectory(prefix="gpuci-heldout-") as scratch:
            tree = Path(scratch) / "tree"
            try:  # as gather.py exports: a blob the mirror left out is written empty (docs' images)
                absent = export(repo, commit, tree)
            except (subprocess.SubprocessError, OSError, IndexError) as exc:
                skipped.append({"commit": commit, "why": why, "error": str(exc)[-300:]})
                print(f"{commit[:12]} skipped: export failed ({why})", flush=True)
                continue
            date = git(repo, "log", "-1", "--format=%cs", commit).strip()
            lint, kinds, seconds = lint_unrun(tree, project, commit, cache)
            listed = independent_unrun(tree, project)
            speed = {}
            if args.previous is not None:  # cold, no cache, this code and the previous release's, in turn
                ours, cpu = cold_run(tree, project, commit, ROOT)
                theirs, previous_cpu = cold_run(tree, project, commit, args.previous)
                speed = {
                    "lint_cold_cpu_s": round(cpu, 3),
                    "previous_cold_cpu_s": round(previous_cpu, 3),
                    "same_output_as_previous": ours == theirs,
                }
        only_lint, only_listed = sorted(set(lint) - set(listed)), sorted(set(listed) - set(lint))
        results.append(
            {
                "commit": commit,
                "date": date,
                "why": why,
                "lint_unrun": len(lint),
                "independent_unrun": len(listed),
                "equal": not only_lint and not only_listed,
                "lint_only": only_lint,
                "independent_only": only_listed,
                "lint_findings": kinds,
                "lint_seconds": round(seconds, 2),
                "blobs_absent_from_mirror": absent,
                **speed,
            }
        )
        r = results[-1]
        print(
            f"{commit[:12]} {date} lint {r['lint_unrun']:4d} independent {r['independent_unrun']:4d}"
            f" lint-only {len(only_lint)} independent-only {len(only_listed)}  ({why})",
            flush=True,
        )
        if not args.only:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(
                json.dumps({"summary": {"seed": args.seed, "partial": True}, "commits": results}) + "\n"
            )
    shutil.rmtree(cache, ignore_errors=True)
    for r in results:  # the hand-read disagreements, apart from the strict comparison
        paths, why = READ_BY_HAND.get(r["commit"][:12], ([], ""))
        read = [p for p in r["independent_only"] if p in paths]
        r["independent_only_read_by_hand"] = {"paths": read, "verdict": "run by a step", "why": why} if read else None
        r["equal_after_reading"] = not r["lint_only"] and len(read) == len(r["independent_only"])
    summary = {
        "project": project["name"],
        "mirror": str(repo),
        "seed": args.seed,
        "drawn": sum(r["why"].startswith("bin ") for r in results),
        "not_drawn_again": {str(k): v for k, v in EARLIER_DRAWS.items()},
        "commits": len(results),
        "equal": sum(r["equal"] for r in results),
        "equal_after_reading_disagreements_by_hand": sum(r["equal_after_reading"] for r in results),
        "lint_only_total": sum(len(r["lint_only"]) for r in results),
        "independent_only_total": sum(len(r["independent_only"]) for r in results),
        "skipped": skipped,
        "code": code_commit(),
    }
    if args.previous is not None:
        timed = [r for r in results if "lint_cold_cpu_s" in r]
        summary["previous_commit"] = git(args.previous, "rev-parse", "--short", "HEAD").strip()
        summary["lint_cold_cpu_s_range"] = [
            min(r["lint_cold_cpu_s"] for r in timed),
            max(r["lint_cold_cpu_s"] for r in timed),
        ]
        summary["previous_cold_cpu_s_range"] = [
            min(r["previous_cold_cpu_s"] for r in timed),
            max(r["previous_cold_cpu_s"] for r in timed),
        ]
        summary["same_output_as_previous"] = sum(r["same_output_as_previous"] for r in timed)
        summary["load_average_end"] = os.getloadavg()[0]
    if args.only:
        print(json.dumps(results, indent=1))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "commits": results}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


def code_commit() -> str:
    """The gpuci commit whose lint made these figures (`+changes` when its tree was not clean)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "harness"], capture_output=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    sys.exit(main())
