"""Load every gathered pipeline with `gpuci pipeline` and `gpuci lint`, as a user would run them.

For each project and commit in manifest.toml (gathered into .corpus/ by gather.py): the
pipeline files the manifest declares, the steps and warnings they give, both commands' exit
codes (2 would be a file gpuci cannot load) and lint's findings by kind. Writes
bench/results/corpus.json and prints a table; exits 1 if any file failed to load.

    python bench/corpus/load.py [--corpus .corpus]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from harness.declare.sources import Declaration  # noqa: E402


def present(tree: Path, declarations: list[str]) -> list[str]:
    """The entries that name something at this commit: layouts changed over time, and lint rightly
    refuses an entry that names nothing."""
    return [d for d in declarations if Declaration.parse(d, "manifest.toml").files(tree)]


def _gpuci(tree: Path, command: str, project: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "harness", command, "--root", str(tree), *extra]
    for entry in present(tree, project["declarations"]):
        args += ["--declarations", entry]
    for key in ("workspace", "default_working_dir"):
        if key in project:
            args += [f"--{key.replace('_', '-')}", project[key]]
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"})


def load_one(tree: Path, project: dict) -> dict:
    declared = [Declaration.parse(d, "manifest.toml") for d in project["declarations"]]
    files = sorted({str(p.relative_to(tree)) for d in declared for p in d.files(tree)})
    started = time.perf_counter()  # --verbose below: every warning, each counted
    pipeline = _gpuci(tree, "pipeline", project, "--all", "--include-optional", "--verbose")
    seconds = time.perf_counter() - started
    lint = _gpuci(tree, "lint", project, "--format", "json")
    steps = 0
    if pipeline.returncode == 0:
        top = yaml.safe_load(pipeline.stdout)["steps"]
        steps = sum(1 for s in [x for t in top for x in t.get("steps", [t])] if "command" in s)
    warnings = [line for line in pipeline.stderr.splitlines() if line.startswith("gpuci: warning:")]
    errors = [line for line in (pipeline.stderr + lint.stderr).splitlines() if line.startswith("gpuci: error:")]
    kinds: collections.Counter[str] = collections.Counter()
    if lint.returncode in (0, 1):
        kinds.update(f["kind"] for f in json.loads(lint.stdout or "[]"))
    hashes = sorted({hashlib.sha256((tree / f).read_bytes()).hexdigest()[:16] for f in files})
    return {
        "files": files,
        "hashes": hashes,
        "pipeline_exit": pipeline.returncode,
        "lint_exit": lint.returncode,
        "steps": steps,
        "warnings": len(warnings),
        "warning_kinds": dict(collections.Counter(_warning_kind(w) for w in warnings)),
        "errors": errors,
        "lint_findings": dict(sorted(kinds.items())),
        "pipeline_seconds": round(seconds, 3),
    }


WARNING_KINDS = (
    "plugins alone",
    "'matrix'",
    "'if'",
    "'branches'",
    "'plugins'",
    "'wait'",
    "'block'",
    "'input'",
    "'trigger'",
    "second step",
    "has no steps",
)


def _warning_kind(line: str) -> str:
    return next((kind.strip("'") for kind in WARNING_KINDS if kind in line), "other")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.toml")
    parser.add_argument("--corpus", type=Path, default=ROOT / ".corpus")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "corpus.json")
    args = parser.parse_args(argv)
    manifest = tomllib.loads(args.manifest.read_text())
    results = []
    for project in manifest["project"]:
        for commit in project["commits"]:
            tree = args.corpus / project["name"] / commit[:12]
            if not tree.is_dir():
                raise SystemExit(f"load: {tree} is missing; run bench/corpus/gather.py first.")
            result = {"project": project["name"], "repo": project["repo"], "commit": commit, **load_one(tree, project)}
            results.append(result)
            print(
                f"{project['name']:16} {commit[:12]}  files {len(result['files']):3}  steps {result['steps']:4}  "
                f"warnings {result['warnings']:4}  exits {result['pipeline_exit']}/{result['lint_exit']}",
                flush=True,
            )
            for error in result["errors"]:
                print(f"    {error}", flush=True)
    failed = [r for r in results if r["pipeline_exit"] != 0 or r["lint_exit"] not in (0, 1)]
    summary = {
        "projects": len({r["project"] for r in results}),
        "commits": len(results),
        "files": sum(len(r["files"]) for r in results),
        "distinct_paths": len({(r["project"], f) for r in results for f in r["files"]}),
        "distinct_versions": len({h for r in results for h in r["hashes"]}),
        "steps": sum(r["steps"] for r in results),
        "warnings": sum(r["warnings"] for r in results),
        "warning_kinds": dict(sum((collections.Counter(r["warning_kinds"]) for r in results), collections.Counter())),
        "failed_to_load": len(failed),
    }
    args.out.write_text(json.dumps({"summary": summary, "results": results}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
