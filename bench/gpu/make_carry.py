"""Gather what the GPU machine needs into `.gpu-carry/` (gitignored), for the device tool's `carry`.

    python3 bench/gpu/make_carry.py [--out .gpu-carry] [--wheel dist/gpuci_harness-….whl]

The GPU machine has no Docker and reaches no package index (docs/gpu-record.md), so this carries:
- `docker-engine.tar.xz`: Debian bookworm's Docker Engine, from its packages (`apt-get download
  docker.io containerd runc tini libdevmapper1.02.1`, unpacked with `dpkg -x`). Only `bin/dockerd`,
  `bin/docker-init` (tini-static), `bin/containerd`, `bin/containerd-shim-runc-v2`, `bin/runc` and
  `lib/libdevmapper.so.1.02.1` are kept: the layout bench/gpu/rig.py's `start_engine` unpacks.
  apt reads bookworm's own list in a scratch folder, so the host's sources and state are untouched.
- `wheelhouse/`: wheels for CPython 3.12 on manylinux x86_64 (the machine's Python): gpuci's wheel
  (from `nox -s build` unless `--wheel` names one) with its runtime dependencies, the image's pinned
  wheels (containers/requirements.txt) and uv's pinned wheel, its hash checked
  (harness.images.installer.UV_WHEELS). docker_h100.py points GPUCI_WHEELHOUSE here and installs the
  Docker SDK from it.

Prints each part's size and the total, which must stay under the carry limit (64 MiB); over it, exit 1.
Nothing of other projects is committed: this script fetches them on the machine that runs it.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.images.installer import UV, UV_WHEELS  # noqa: E402

LIMIT = 64 * 2**20
PACKAGES = ("docker.io", "containerd", "runc", "tini", "libdevmapper1.02.1")
BOOKWORM = (
    "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
)
# What the engine needs, by where each package puts it: the name it has in the tarball.
KEPT = {
    "usr/sbin/dockerd": "bin/dockerd",
    "usr/bin/tini-static": "bin/docker-init",
    "usr/bin/containerd": "bin/containerd",
    "usr/bin/containerd-shim-runc-v2": "bin/containerd-shim-runc-v2",
    "usr/sbin/runc": "bin/runc",
    "lib/x86_64-linux-gnu/libdevmapper.so.1.02.1": "lib/libdevmapper.so.1.02.1",
}
TARGET = ["--only-binary=:all:", "--python-version=3.12", "--implementation=cp", "--abi=cp312",
          "--platform=manylinux_2_17_x86_64", "--platform=manylinux2014_x86_64"]  # fmt: skip


def run(*command: str, cwd: Path | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=cwd)


def engine(out: Path, scratch: Path) -> Path:
    """docker-engine.tar.xz from bookworm's packages."""
    apt = scratch / "apt"
    for folder in ("lists/partial", "cache/archives/partial", "sources.list.d"):
        (apt / folder).mkdir(parents=True)
    (apt / "sources.list.d" / "bookworm.sources").write_text(BOOKWORM)
    options = [
        f"-oDir::Etc::SourceList={os.devnull}", f"-oDir::Etc::SourceParts={apt / 'sources.list.d'}",
        f"-oDir::State::Lists={apt / 'lists'}", f"-oDir::Cache={apt / 'cache'}", "-oAPT::Architecture=amd64",
        "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root",
    ]  # fmt: skip
    run("apt-get", *options, "-qq", "update")
    debs = scratch / "debs"
    debs.mkdir()
    run("apt-get", *options, "-qq", "download", *PACKAGES, cwd=debs)
    unpacked = scratch / "unpacked"
    for deb in sorted(debs.glob("*.deb")):
        run("dpkg", "-x", str(deb), str(unpacked))
    stage = scratch / "engine"
    for source, name in KEPT.items():
        found = unpacked / source
        if not found.is_file() or found.is_symlink():
            raise SystemExit(f"make_carry: {source} is not in bookworm's {', '.join(PACKAGES)}; the layout changed")
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(found, stage / name)
    tarball = out / "docker-engine.tar.xz"
    tarball.unlink(missing_ok=True)
    os.environ["XZ_OPT"] = "-9 -T0"
    run("tar", "-cJf", str(tarball), "--owner=0", "--group=0", "-C", str(stage), "bin", "lib")
    return tarball


def gpuci_wheel(given: Path | None) -> Path:
    """gpuci's own wheel: the one named, else the one `nox -s build` makes in dist/."""
    if given is None:
        run(sys.executable, "-m", "nox", "-s", "build", cwd=ROOT)
        made = sorted(glob.glob(str(ROOT / "dist" / "gpuci_harness-*.whl")), key=os.path.getmtime)
        if not made:
            raise SystemExit("make_carry: `nox -s build` made no wheel in dist/")
        given = Path(made[-1])
    return given.resolve()


def wheelhouse(out: Path, wheel: Path, scratch: Path) -> Path:
    """gpuci, its dependencies and the image's pins for the machine's Python; uv by its hash."""
    folder = out / "wheelhouse"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "-d", str(folder)]
    run(*pip, *TARGET, str(wheel), "-r", str(ROOT / "containers" / "requirements.txt"))
    pinned = scratch / "uv.txt"
    pinned.write_text(f"{UV} --hash=sha256:{UV_WHEELS['x86_64']}\n")
    run(*pip, *TARGET, "--no-deps", "--require-hashes", "-r", str(pinned))
    return folder


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu-carry")
    parser.add_argument("--wheel", type=Path, help="gpuci's wheel (default: `nox -s build`'s)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpuci-carry-") as tmp:
        parts = [engine(args.out, Path(tmp)), wheelhouse(args.out, gpuci_wheel(args.wheel), Path(tmp))]
    total = 0
    for part in parts:
        total += size(part)
        print(f"{part.relative_to(args.out)}: {size(part) / 2**20:.1f} MiB", flush=True)
    for wheel in sorted((args.out / "wheelhouse").glob("*.whl")):
        print(f"  {wheel.name}: {wheel.stat().st_size / 2**20:.2f} MiB")
    print(f"total: {total / 2**20:.1f} MiB (limit {LIMIT / 2**20:.0f} MiB)")
    return 0 if total <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
