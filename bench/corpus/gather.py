"""Gather the corpus of real Buildkite pipelines named in manifest.toml into .corpus/.

Each project's whole tree is exported at each chosen commit (`git archive`), so `lint` can
resolve the paths its steps name. The history comes from a local mirror where one exists
(`--mirror-root DIR`, laid out DIR/<owner>+<name>/repo, as the repositories this project's
developers read are), else from a blobless clone of https://github.com/<repo>.

    python bench/corpus/gather.py [--mirror-root /work/.mirror] [--out .corpus]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True)


def _has(repo: Path, commit: str) -> bool:
    return _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def source_for(project: dict, mirror_root: Path | None, cache: Path) -> Path:
    """A git directory holding the project's commits: a mirror if any has them, else a clone."""
    commits = project["commits"]
    for repo in [project["repo"], *project.get("mirrors", [])]:
        if mirror_root is None:
            break
        candidate = mirror_root / repo.replace("/", "+") / "repo"
        if candidate.is_dir() and all(_has(candidate, c) for c in commits):
            return candidate
    clone = cache / project["repo"].replace("/", "+")
    if not clone.is_dir():
        print(f"  cloning https://github.com/{project['repo']} (blobless)", flush=True)
        subprocess.run(
            ["git", "clone", "--bare", "--filter=blob:none", f"https://github.com/{project['repo']}", str(clone)],
            check=True,
        )
    missing = [c for c in commits if not _has(clone, c)]
    if missing:
        raise SystemExit(f"gather: {project['repo']} has no commit {missing[0]}; fix manifest.toml.")
    return clone


def export(source: Path, commit: str, target: Path) -> int:
    """The tree at `commit` into `target`; returns how many blobs the source lacked.

    Snapshots may leave their largest files out; such a file is written empty, so its path
    still exists for `lint` (which reads paths, and text only of scripts and tests). The tree
    is written next to `target` first, so a cut-off export is never taken for whole.
    """
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    listing = _git(source, "ls-tree", "-r", "-z", commit).stdout.split(b"\0")
    entries = []
    for line in filter(None, listing):
        meta, name = line.split(b"\t", 1)
        mode, kind, sha = meta.split()
        if kind == b"blob" and mode != b"120000":  # links and submodules are not needed
            entries.append((sha.decode(), name.decode("utf-8", "surrogateescape")))
    batch = subprocess.Popen(
        ["git", "-C", str(source), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert batch.stdin and batch.stdout
    absent = 0
    for sha, name in entries:
        batch.stdin.write(sha.encode() + b"\n")
        batch.stdin.flush()
        header = batch.stdout.readline().split()
        data = b""
        if header[-1] == b"missing":
            absent += 1
        else:
            data = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)
        path = partial / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    batch.stdin.close()
    batch.wait()
    partial.rename(target)
    return absent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.toml")
    parser.add_argument("--mirror-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / ".corpus")
    args = parser.parse_args(argv)
    manifest = tomllib.loads(args.manifest.read_text())
    projects = manifest["project"]
    total = sum(len(p["commits"]) for p in projects)
    done = 0
    for project in projects:
        source = source_for(project, args.mirror_root, args.out / "git")
        for commit in project["commits"]:
            done += 1
            target = args.out / project["name"] / commit[:12]
            if target.is_dir():
                print(f"[{done}/{total}] {project['name']} {commit[:12]}: present", flush=True)
                continue
            absent = export(source, commit, target)
            note = f" ({absent} large files absent from the source, written empty)" if absent else ""
            print(f"[{done}/{total}] {project['name']} {commit[:12]}: exported{note}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
