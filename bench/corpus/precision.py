"""How often `gpuci lint` is wrong on real projects' history: findings by kind, a sample judged by hand.

For every project of manifest.toml marked `lint = true` and each of its commits gathered into
.corpus/ (bench/corpus/gather.py), runs `gpuci lint --format json` as a user would (the project's
declarations, workspace and dependency matching: its generator's, at that commit). A finding's
identity is (project, kind, path, variable): the same stale path at ten commits is one finding to
judge. From each kind's identities a fixed sample is drawn (ordered by a hash of the identity, so
the sample is not chosen by whoever judges it) and looked up in judged.toml, where each verdict is
`real` or `false` with the reason, written by hand after reading the project's files. Known real
breaks (judged.toml `[[known]]`) must still be found at their commit.

Writes bench/results/lint-precision.json and prints, per kind: findings, distinct, sampled,
judged, false, false-finding rate; and the held-out batch (verdicts marked `batch = "held-out"`,
judged before any change they prompted) as first judged. Sampled findings without a verdict are
listed for judging (exit 1), as are known breaks no longer found.

    python bench/corpus/precision.py [--corpus .corpus] [--sample 50]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from load import present  # noqa: E402

KINDS = (
    "missing-path",
    "unrun-test",
    "unset-gate",
    "dead-dependency",
    "platform-skip",
    "unresolved-target",
    "script-not-test",
    "stale-ignore",
)


def settings(tree: Path, project: dict, commit: str) -> list[str]:
    """The project's lint settings at a commit, as flags: as its maintainers would configure it."""
    args: list[str] = []
    for entry in present(tree, project["declarations"]):
        args += ["--declarations", entry]
    for key in ("workspace", "default_working_dir"):
        if key in project:
            args += [f"--{key.replace('_', '-')}", project[key]]
    for script in project.get("external_scripts", []):
        args += ["--external-script", script]
    # The project's generators' matching when this commit ran (manifest `match`), else component.
    match = next((m for m in project.get("match", []) if commit in m["commits"]), {})
    args += ["--dependency-match", match.get("default", "component")]
    for pipeline, mode in match.get("for", {}).items():
        args += ["--dependency-match-for", f"{pipeline}={mode}"]
    return args


def lint(tree: Path, project: dict, commit: str) -> list[dict]:
    args = [sys.executable, "-m", "harness", "lint", "--root", str(tree), "--format", "json"]
    args += settings(tree, project, commit)
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"})
    if done.returncode not in (0, 1) or "Traceback" in done.stderr:
        raise SystemExit(f"precision: lint failed on {tree}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout or "[]")


def identity(project: str, finding: dict) -> str:
    return "|".join((project, finding["kind"], finding.get("path") or "", finding.get("variable") or ""))


def rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.toml")
    parser.add_argument("--judged", type=Path, default=HERE / "judged.toml")
    parser.add_argument("--corpus", type=Path, default=ROOT / ".corpus")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lint-precision.json")
    parser.add_argument("--sample", type=int, default=50, help="identities judged per kind")
    args = parser.parse_args(argv)

    manifest = tomllib.loads(args.manifest.read_text())
    judged = tomllib.loads(args.judged.read_text()) if args.judged.exists() else {}
    verdicts = {
        "|".join((j["project"], j["kind"], j.get("path", ""), j.get("variable", ""))): j
        for j in judged.get("judged", [])
    }

    per_commit: list[dict] = []
    seen: dict[str, dict] = {}  # identity -> one example finding, with where it appears
    counts: collections.Counter[str] = collections.Counter()
    projects = [p for p in manifest["project"] if p.get("lint")]
    for project in projects:
        for commit in project["commits"]:
            tree = args.corpus / project["name"] / commit[:12]
            if not tree.is_dir():
                print(f"  {project['name']} {commit[:12]}: not gathered (run bench/corpus/gather.py)", flush=True)
                continue
            findings = lint(tree, project, commit)
            kinds = collections.Counter(f["kind"] for f in findings)
            counts.update(kinds)
            per_commit.append({"project": project["name"], "commit": commit, "findings": dict(sorted(kinds.items()))})
            print(f"  {project['name']} {commit[:12]}: {dict(sorted(kinds.items()))}", flush=True)
            for finding in findings:
                entry = seen.setdefault(identity(project["name"], finding), {**finding, "commits": []})
                entry["commits"].append(commit[:12])

    by_kind: dict[str, dict] = {}
    unjudged: list[tuple[str, dict]] = []
    for kind in KINDS:
        keys = sorted((k for k in seen if k.split("|")[1] == kind), key=rank)
        sample = keys[: args.sample]
        verdict = [verdicts[k]["verdict"] for k in sample if k in verdicts]
        false = sum(v == "false" for v in verdict)
        unjudged += [(k, seen[k]) for k in sample if k not in verdicts]
        by_kind[kind] = {
            "findings": counts[kind],
            "distinct": len(keys),
            "sampled": len(sample),
            "judged": len(verdict),
            "false": false,
            "false_rate": round(false / len(verdict), 3) if verdict else None,
            "sample": [{"identity": k, **{f: verdicts.get(k, {}).get(f) for f in ("verdict", "why")}} for k in sample],
        }

    known = []
    for entry in judged.get("known", []):
        key = "|".join((entry["project"], entry["kind"], entry.get("path", ""), entry.get("variable", "")))
        found = key in seen and entry["commit"][:12] in seen[key]["commits"]
        known.append({**entry, "found": found})

    # The held-out batch as first judged (before any change it prompted), whether or not still found.
    held_out: dict[str, dict[str, int]] = {}
    for entry in judged.get("judged", []):
        if entry.get("batch") == "held-out":
            counts_of = held_out.setdefault(entry["kind"], {"judged": 0, "false": 0})
            counts_of["judged"] += 1
            counts_of["false"] += entry["verdict"] == "false"

    summary = {
        "projects": len(projects),
        "commits": len(per_commit),
        "by_kind": {k: {f: v for f, v in d.items() if f != "sample"} for k, d in by_kind.items()},
        "known_breaks": {"listed": len(known), "found": sum(k["found"] for k in known)},
        "held_out_first_pass": held_out,
        "code": code_commit(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"summary": summary, "by_kind": by_kind, "known": known, "commits": per_commit}, indent=1) + "\n"
    )

    print(f"\n{len(projects)} projects, {len(per_commit)} commits")
    print(f"{'kind':<16} {'findings':>8} {'distinct':>8} {'sampled':>7} {'judged':>6} {'false':>5} {'rate':>6}")
    for kind, d in by_kind.items():
        rate = "-" if d["false_rate"] is None else f"{d['false_rate']:.0%}"
        counts = f"{d['findings']:>8} {d['distinct']:>8} {d['sampled']:>7} {d['judged']:>6} {d['false']:>5}"
        print(f"{kind:<16} {counts} {rate:>6}")
    print(f"known real breaks found: {summary['known_breaks']['found']} of {summary['known_breaks']['listed']}")
    for kind, c in held_out.items():
        print(f"held-out batch, first pass: {kind}: {c['false']} false of {c['judged']} judged")
    for entry in known:
        if not entry["found"]:
            print(f"  MISSED {entry['project']} {entry['commit'][:12]} {entry['kind']} {entry.get('path', '')}")
    if unjudged:
        print(f"\n{len(unjudged)} sampled finding(s) without a verdict in {args.judged.name}:")
        for key, finding in unjudged:
            print(f"  {key}\n      {finding['file']}:{finding['line']} [{finding['step']}] {finding['message']}")
            print(f"      at {', '.join(finding['commits'][:4])}{' …' if len(finding['commits']) > 4 else ''}")
    print(f"wrote {args.out.relative_to(ROOT)}")
    return 1 if unjudged or any(not k["found"] for k in known) else 0


def code_commit() -> str:
    """The gpuci commit whose lint made these figures (`+changes` when its tree was not clean)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "harness"], capture_output=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    sys.exit(main())
