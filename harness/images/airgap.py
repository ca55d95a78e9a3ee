"""Images for hosts with no registry: a Debian base through debootstrap, and a host wheelhouse.

`python -m harness image bootstrap` makes the base image from Debian packages (a mirror, or a
tarball of packages made earlier with `--make-tarball` on a connected machine) and imports it
with `docker import`; Python packages reach images from a wheelhouse that `pip download`
fills on the host, so no build container ever needs the network.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness.console import say
from harness.errors import ImageBuildError, UsageError
from harness.gpu.locks import host_lock
from harness.images.installer import pip_command
from harness.owned import make_owned_dir, remove_stale

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "tini", "ca-certificates", "procps")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_REPOSITORY = "gpuci/base"
ROOTFS_PREFIX = "gpuci-rootfs-"


@dataclass(frozen=True)
class BaseRecipe:
    suite: str = SUITE
    packages: tuple[str, ...] = PACKAGES
    ca_bundle: Path | None = None

    @property
    def tag(self) -> str:
        digest = hashlib.sha256()
        digest.update(f"{self.suite}\n{','.join(sorted(self.packages))}\n".encode())
        if self.ca_bundle:
            digest.update(self.ca_bundle.read_bytes())
        return f"{BASE_REPOSITORY}:{self.suite}-{digest.hexdigest()[:12]}"


def _run(cmd: list[str], what: str) -> None:
    """Run a build tool, streaming its output as progress."""
    say(f"{what}: {' '.join(cmd)}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-19:], line.rstrip()]
        print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
    if proc.wait() != 0:
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}); its last lines:\n  " + "\n  ".join(tail))


def _debootstrap() -> str:
    tool = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.path.exists(p)), None
    )
    if tool is None:
        raise UsageError(
            "debootstrap is not installed; it builds gpuci's base image from Debian packages. "
            "Install it (`apt-get install debootstrap`) and run again."
        )
    if os.geteuid() != 0:
        raise UsageError(
            "building the base image with debootstrap needs root (it creates device nodes and "
            "sets file owners). Run `sudo python -m harness image bootstrap` once; every later "
            "build reuses the image."
        )
    return tool


def make_packages_tarball(output: Path, mirror: str = DEFAULT_MIRROR, recipe: BaseRecipe | None = None) -> None:
    """On a connected machine: download the base's Debian packages into one tarball."""
    recipe = recipe or BaseRecipe()
    with tempfile.TemporaryDirectory(prefix="gpuci-debs-") as work:
        _run(
            [
                _debootstrap(),
                "--variant=minbase",
                f"--include={','.join(recipe.packages)}",
                f"--make-tarball={output.resolve()}",
                recipe.suite,
                work,
                mirror,
                *_script_for(_debootstrap(), recipe.suite),
            ],
            "downloading Debian packages",
        )


def bootstrap_base(
    client: docker.DockerClient,
    recipe: BaseRecipe | None = None,
    mirror: str = DEFAULT_MIRROR,
    packages_tarball: Path | None = None,
) -> str:
    """Build and import the base image unless its tag exists; return the tag."""
    recipe = recipe or BaseRecipe()
    with host_lock(f"build-{recipe.tag}"):
        try:
            client.images.get(recipe.tag)
            return recipe.tag
        except docker.errors.ImageNotFound:
            pass
        _bootstrap(client, recipe, mirror, packages_tarball)
    return recipe.tag


def _bootstrap(client: docker.DockerClient, recipe: BaseRecipe, mirror: str, packages_tarball: Path | None) -> None:
    tool = _debootstrap()
    say(f"building base image {recipe.tag} from Debian {recipe.suite} packages (about a minute)")
    scratch = Path(_scratch() or tempfile.gettempdir())
    remove_stale(scratch, ROOTFS_PREFIX)  # a bootstrap killed mid-way: hundreds of MB
    work = make_owned_dir(scratch, ROOTFS_PREFIX)
    try:
        rootfs = Path(work) / "rootfs"
        source = [f"--unpack-tarball={packages_tarball.resolve()}"] if packages_tarball else []
        _run(
            [
                tool,
                "--variant=minbase",
                f"--include={','.join(recipe.packages)}",
                *source,
                recipe.suite,
                str(rootfs),
                mirror,
                *_script_for(tool, recipe.suite),
            ],
            "debootstrap",
        )
        if recipe.ca_bundle:
            extra = rootfs / "usr/local/share/ca-certificates/gpuci-extra.crt"
            shutil.copyfile(recipe.ca_bundle, extra)
            with open(rootfs / "etc/ssl/certs/ca-certificates.crt", "ab") as bundle:
                bundle.write(recipe.ca_bundle.read_bytes())
        # Shrink: apt lists and caches have no use in a CI image.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        tarball = Path(work) / "rootfs.tar"
        _run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."],
            "packing the root filesystem",
        )
        say(f"importing {tarball.stat().st_size // 2**20} MiB into the Docker Engine")
        repository, tag = recipe.tag.split(":")
        try:
            client.api.import_image_from_file(
                str(tarball),
                repository=repository,
                tag=tag,
                changes=["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]', "LABEL gpuci.base=" + recipe.tag],
            )
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"docker import of the base image failed: {exc.explanation or exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _script_for(tool: str, suite: str) -> list[str]:
    """debootstrap's script for a suite it was released before (a Debian testing named after it):
    every Debian suite uses the common one that `sid` names."""
    scripts = Path(os.environ.get("DEBOOTSTRAP_DIR", "/usr/share/debootstrap")) / "scripts"
    if (scripts / suite).exists() or not (scripts / "sid").exists():
        return []
    return [str(scripts / "sid")]


def _scratch() -> str | None:
    """Where the root filesystem is unpacked: not a tmpfs, which may be too small."""
    return os.environ.get("GPUCI_SCRATCH") or ("/var/tmp" if os.path.isdir("/var/tmp") else None)


def wheelhouse_dir(root: Path) -> Path:
    """The host's GPUCI_WHEELHOUSE, else gpuci's own folder in the checkout (a real folder, never a link)."""
    from harness.untrusted import private_dir

    named = os.environ.get("GPUCI_WHEELHOUSE")
    return Path(named) if named else private_dir(root, ".gpuci", "wheelhouse")


def _fill_with_uv(requirements: Path, wheelhouse: Path, ca_bundle: Path | None, root: Path | None) -> bool:
    """gpuci's pins (pure Python or abi3: Python 3.10, manylinux2014, any later base takes them) by uv,
    offline first; False where the host has no uv (pip fills it). Pins resolved once on this host are
    taken from the host cache with no resolution (pinned_wheels)."""
    from harness.images.fetch import fetch
    from harness.images.installer import usable_uv
    from harness.images.pinned_wheels import recall, remember
    from harness.images.uv_resolve import Request, compile_wheels

    uv = usable_uv(wheelhouse, ca_bundle, root)
    if uv is None:
        return False
    machine = platform.machine()
    known = recall(requirements, machine)
    if known is not None:
        fetch(known, wheelhouse, root, ca_bundle)  # every one is in the host cache: checked and linked
        return True
    for offline in (True, False):
        request = Request(requirements, "3.10", machine, "2.17", wheelhouse, None, ca_bundle, no_deps=True)
        compiled = compile_wheels(uv, request, f"{machine}-manylinux_2_17", offline)
        if compiled.wheels is not None:
            fetched = fetch(compiled.wheels, wheelhouse, root, ca_bundle)
            if fetched:
                say(f"fetched {len(fetched)} wheel(s) for the image into {wheelhouse}")
            if not offline:
                remember(requirements, machine, compiled.wheels)
            return True
    raise ImageBuildError(
        f"could not fill the wheelhouse {wheelhouse} from {requirements}: {compiled.output[-800:]}. On a host with "
        "no access to the package index, copy the wheels there (or set GPUCI_WHEELHOUSE to a folder that has them)."
    )


def fill_wheelhouse(
    requirements: Path, wheelhouse: Path, ca_bundle: Path | None = None, root: Path | None = None
) -> None:
    """Make sure every pinned wheel is in `wheelhouse`: offline first, then from the index; the
    hashes of what the index gave are recorded in `root`'s .gpuci (checked at every build)."""
    from harness.host_python import run_python
    from harness.images.wheels import record_fetched

    wheelhouse = Path(os.path.abspath(wheelhouse))
    requirements = Path(os.path.abspath(requirements))
    wheelhouse.mkdir(parents=True, exist_ok=True)
    if _fill_with_uv(requirements, wheelhouse, ca_bundle, root):
        return
    base = [
        *pip_command(),
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "-r",
        str(requirements),
        "-d",
        str(wheelhouse),
    ]
    offline = run_python([*base, "--no-index", "--find-links", str(wheelhouse)], capture_output=True, text=True)
    if offline.returncode == 0:
        return
    machine = platform.machine()
    targets = [
        f"--platform=manylinux2014_{machine}",
        f"--platform=manylinux_2_17_{machine}",
        "--python-version=3.10",
        "--implementation=cp",
    ]
    cert = ["--cert", os.path.abspath(ca_bundle)] if ca_bundle else []
    say(f"downloading wheels for the image into {wheelhouse}")
    before = set(os.listdir(wheelhouse))
    online = run_python([*base, *targets, *cert], capture_output=True, text=True)
    if root is not None:
        record_fetched(root, wheelhouse, set(os.listdir(wheelhouse)) - before)
    if online.returncode != 0:
        raise ImageBuildError(
            f"could not fill the wheelhouse {wheelhouse} from {requirements}: "
            f"{online.stderr.strip()[-800:]}. On a host with no access to the package index, "
            "copy the wheels there (or set GPUCI_WHEELHOUSE to a folder that has them)."
        )
