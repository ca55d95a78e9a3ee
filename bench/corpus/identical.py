"""Whether two versions of gpuci's lint say exactly the same on every corpus tree.

A speed change must leave every finding as it was. For each project marked `lint = true` and
each of its gathered commits (bench/corpus/gather.py), runs `gpuci lint --format json --no-cache`
with the project's settings (as precision.py does) under this checkout's code and under a
reference checkout's (`git worktree add /tmp/ref REV`), and compares stdout, stderr and the exit
code byte for byte. With `--record FILE` the reference's outputs are kept there, so later
comparisons need not run it again (`--against FILE`).

    python bench/corpus/identical.py --reference /tmp/ref [--record /tmp/ref.json]
    python bench/corpus/identical.py --against /tmp/ref.json

Exits 1 naming each tree that differs, 0 when all are identical.
"""

from __future__ import annotations

import argparse
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

from precision import settings  # noqa: E402


def outputs(tree: Path, project: dict, commit: str, code: Path) -> dict:
    """What the lint whose code is at `code` says on `tree`: stdout, stderr, exit code."""
    args = [sys.executable, "-m", "harness", "lint", "--root", str(tree), "--format", "json", "--no-cache"]
    args += settings(tree, project, commit)
    done = subprocess.run(args, capture_output=True, text=True, cwd=code, env={"PATH": "/usr/bin:/bin"})
    return {"stdout": done.stdout, "stderr": done.stderr, "rc": done.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.toml")
    parser.add_argument("--corpus", type=Path, default=ROOT / ".corpus")
    parser.add_argument("--reference", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--record", type=Path, help="keep the reference's outputs in this file")
    parser.add_argument("--against", type=Path, help="compare with outputs kept by --record")
    args = parser.parse_args(argv)
    if (args.reference is None) == (args.against is None):
        raise SystemExit("identical: give either --reference DIR (a checkout) or --against FILE (kept outputs)")
    kept = json.loads(args.against.read_text()) if args.against else {}
    recorded: dict[str, dict] = {}
    manifest = tomllib.loads(args.manifest.read_text())
    trees = differ = 0
    for project in (p for p in manifest["project"] if p.get("lint")):
        for commit in project["commits"]:
            tree = args.corpus / project["name"] / commit[:12]
            if not tree.is_dir():
                continue
            key = f"{project['name']}/{commit[:12]}"
            reference = kept.get(key) if args.against else outputs(tree, project, commit, args.reference)
            recorded[key] = reference
            ours = outputs(tree, project, commit, ROOT)
            trees += 1
            if reference is None or ours != reference:
                differ += 1
                parts = [k for k in ("stdout", "stderr", "rc") if reference is None or ours[k] != reference[k]]
                print(f"{key}: differs ({', '.join(parts)})", flush=True)
            else:
                count = len(json.loads(ours["stdout"] or "[]"))
                print(f"{key}: identical ({count} findings)", flush=True)
    if args.record:
        args.record.write_text(json.dumps(recorded))
    if not trees:
        raise SystemExit("identical: no tree gathered; run bench/corpus/gather.py first")
    print(f"{trees - differ} of {trees} trees identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
