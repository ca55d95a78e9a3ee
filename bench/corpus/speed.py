"""How long `gpuci lint` and `gpuci lint --since` take on the corpus's largest real trees.

For the largest gathered trees of projects marked `lint = true` (bench/corpus/gather.py), each is
copied into a throwaway git repository with one commit, then a pull-request-sized change is
committed on top (one test module moved one folder down). Timed as a user runs it, a fresh
interpreter each time (its start included), with the project's settings as precision.py uses them:

- `lint` cold (an empty cache folder) and warm (the median of 5 runs after it);
- `lint --since HEAD~1` cold and warm, the same way;
- findings cold, warm and with `--no-cache` compared: a cache may never change a finding;
- with `--previous DIR` (a checkout of the previous release, e.g. `git worktree add /tmp/prev 330f9de`),
  the same `lint` cold and warm with that code, on the same tree, one after the other.

The issue's goal: under 0.5 s warm and 1.5 s cold on a ~6.5k-file tree. The machine's load at the
start and the end is recorded: a shared machine's figures are not a quiet machine's. So each run's
CPU time (user + system, its children's included: git) is recorded beside its wall time: on a
loaded machine the wall time is mostly waiting for a core, the CPU time what the lint costs.

Writes bench/results/lint-speed.json and prints a table.

    python bench/corpus/speed.py [--corpus .corpus] [--trees 3] [--runs 5] [--previous /tmp/prev]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from precision import settings  # noqa: E402


def git(repo: Path, *args: str) -> str:
    ident = ["-c", "user.email=bench@gpuci", "-c", "user.name=bench", "-c", "core.hooksPath=/dev/null"]
    return subprocess.run(["git", "-C", str(repo), *ident, *args], check=True, capture_output=True, text=True).stdout


def timed(args: list[str], cache: Path, code: Path = ROOT) -> tuple[float, list[dict], float]:
    """One run as a user runs it (a fresh interpreter), of the gpuci whose code is at `code`: its
    wall seconds, its findings, and its CPU seconds (user + system, with the git it runs)."""
    env = {"PATH": "/usr/bin:/bin", "GPUCI_CACHE_DIR": str(cache), "HOME": os.environ.get("HOME", "/root")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=code, env=env)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):
        raise SystemExit(f"speed: lint failed ({' '.join(args[:4])} …):\n{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout or "[]"), cpu


def moved_test(repo: Path) -> tuple[str, str]:
    """A test module a step is likely to name, moved one folder down: a refactor's typical slip."""
    tests = sorted(p for p in (repo / "tests").rglob("test_*.py") if p.is_file())
    source = tests[len(tests) // 2]
    target = source.parent / "moved" / source.name
    return str(source.relative_to(repo)), str(target.relative_to(repo))


def measure(
    tree: Path,
    project: dict,
    commit: str,
    runs: int,
    scratch: Path,
    previous: Path | None = None,
    skip_since: bool = False,
) -> dict:
    repo = scratch / "repo"
    shutil.copytree(tree, repo, symlinks=True)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    source, target = moved_test(repo)
    (repo / target).parent.mkdir(parents=True, exist_ok=True)
    git(repo, "mv", source, target)
    git(repo, "commit", "-qm", "move a test")
    files = int(subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True).stdout.count("\n"))
    flags = ["--root", str(repo), "--format", "json", *settings(repo, project, commit)]
    result: dict = {"project": project["name"], "commit": commit, "files": files, "change": f"{source} -> {target}"}
    for name, extra in (("lint", []), ("lint_since", ["--since", "HEAD~1"]))[: 1 if skip_since else 2]:
        cache = scratch / f"cache-{name}"
        cold, cold_findings, cold_cpu = timed(["lint", *extra, *flags], cache)
        warm, warm_cpu = [], []
        for _ in range(runs):
            seconds, findings, cpu = timed(["lint", *extra, *flags], cache)
            warm.append(seconds)
            warm_cpu.append(cpu)
            if findings != cold_findings:
                raise SystemExit(
                    f"speed: {name} found differently warm than cold on {tree}: the cache changed a finding"
                )
        _, uncached, _ = timed(["lint", *extra, *flags, "--no-cache"], scratch / "unused")
        if uncached != cold_findings:
            raise SystemExit(f"speed: {name} found differently with --no-cache on {tree}")
        result[name] = {
            "cold_s": round(cold, 3),
            "cold_cpu_s": round(cold_cpu, 3),
            "warm_median_s": round(statistics.median(warm), 3),
            "warm_max_s": round(max(warm), 3),
            "warm_median_cpu_s": round(statistics.median(warm_cpu), 3),
            "findings": len(cold_findings),
        }
    if previous is not None:  # the previous release's code on the same tree, the same way
        cache = scratch / "cache-previous"
        cold, _, cold_cpu = timed(["lint", *flags], cache, previous)
        warm_runs = [timed(["lint", *flags], cache, previous) for _ in range(runs)]
        result["previous_lint"] = {
            "cold_s": round(cold, 3),
            "cold_cpu_s": round(cold_cpu, 3),
            "warm_median_s": round(statistics.median(r[0] for r in warm_runs), 3),
            "warm_median_cpu_s": round(statistics.median(r[2] for r in warm_runs), 3),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.toml")
    parser.add_argument("--corpus", type=Path, default=ROOT / ".corpus")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lint-speed.json")
    parser.add_argument("--trees", type=int, default=3, help="how many of the largest trees")
    parser.add_argument("--runs", type=int, default=5, help="warm runs per measure (the median is quoted)")
    parser.add_argument("--previous", type=Path, help="a checkout of the previous release, timed alongside")
    parser.add_argument("--skip-since", action="store_true", help="time `lint` only, not `lint --since`")
    args = parser.parse_args(argv)

    manifest = tomllib.loads(args.manifest.read_text())
    candidates = []
    for project in (p for p in manifest["project"] if p.get("lint")):
        for commit in project["commits"]:
            tree = args.corpus / project["name"] / commit[:12]
            if tree.is_dir():
                candidates.append((sum(1 for _ in tree.rglob("*")), tree, project, commit))
    if not candidates:
        raise SystemExit("speed: no tree gathered; run bench/corpus/gather.py first (nox -s corpus does)")
    largest = sorted(candidates, key=lambda c: -c[0])[: args.trees]
    load_at_start = os.getloadavg()[0]
    results = []
    for count, tree, project, commit in largest:
        print(f"  {project['name']} {commit[:12]} ({count} entries): measuring", flush=True)
        with tempfile.TemporaryDirectory(prefix="gpuci-lint-speed-") as scratch:
            results.append(measure(tree, project, commit, args.runs, Path(scratch), args.previous, args.skip_since))
        r = results[-1]
        line = (
            f"    lint {r['lint']['cold_s']:.2f} s cold ({r['lint']['cold_cpu_s']:.2f} s CPU),"
            f" {r['lint']['warm_median_s']:.2f} s warm ({r['lint']['warm_median_cpu_s']:.2f} s CPU)"
        )
        if "lint_since" in r:
            line += f"; --since {r['lint_since']['cold_s']:.2f} s cold, {r['lint_since']['warm_median_s']:.2f} s warm"
        if "previous_lint" in r:
            p = r["previous_lint"]
            line += f"; previous release {p['cold_s']:.2f} s cold, {p['warm_median_s']:.2f} s warm"
        print(line, flush=True)
    summary = {
        "trees": len(results),
        "largest_files": max(r["files"] for r in results),
        "lint_warm_median_s_max": max(r["lint"]["warm_median_s"] for r in results),
        "lint_cold_s_max": max(r["lint"]["cold_s"] for r in results),
        "lint_warm_median_cpu_s_max": max(r["lint"]["warm_median_cpu_s"] for r in results),
        "lint_cold_cpu_s_max": max(r["lint"]["cold_cpu_s"] for r in results),
        "machine": f"{os.cpu_count()} cores",
        "load_average_start_end": [load_at_start, os.getloadavg()[0]],
        "python": sys.version.split()[0],
    }
    if all("lint_since" in r for r in results):
        summary["lint_since_warm_median_s_max"] = max(r["lint_since"]["warm_median_s"] for r in results)
        summary["lint_since_cold_s_max"] = max(r["lint_since"]["cold_s"] for r in results)
    if args.previous is not None:
        summary["previous_commit"] = git(args.previous, "rev-parse", "HEAD").strip()
    if all("previous_lint" in r for r in results):
        summary["previous_warm_median_s_max"] = max(r["previous_lint"]["warm_median_s"] for r in results)
        summary["previous_cold_s_max"] = max(r["previous_lint"]["cold_s"] for r in results)
        summary["previous_warm_median_cpu_s_max"] = max(r["previous_lint"]["warm_median_cpu_s"] for r in results)
        summary["previous_cold_cpu_s_max"] = max(r["previous_lint"]["cold_cpu_s"] for r in results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "trees": results}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
