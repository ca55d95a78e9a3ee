"""uv, where it can be had: its pinned, hash-checked wheel in the wheelhouse beside the rest.

The images install with uv when its wheel is in the build's wheelhouse and its binary runs on the
base image (harness/images/in_image/install_wheels.py), and with pip otherwise. On the host, the same
wheel's binary (unpacked once into gpuci's host cache, after its hash is checked) resolves the
project's requirements and fetches the wheels' metadata (harness/images/uv_resolve.py). The wheel is
fetched once for the host's machine, by pip: the one place pip stays on the host, since uv cannot
fetch itself; its sha256 must be one of UV_WHEELS. On a host that cannot fetch it (air-gapped, with
a wheelhouse filled without it), on a machine uv's wheel is not listed for, or where its binary does
not run, pip resolves and installs, as before.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from harness.console import say

UV_VERSION = "0.13.9"
UV = f"uv=={UV_VERSION}"
# sha256 of uv's manylinux wheels on PyPI, by machine: a fetched uv wheel must be one of these.
UV_WHEELS = {
    "x86_64": "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    "aarch64": "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
}


def pip_command() -> list[str]:
    """`-m pip`, for harness.host_python to run with gpuci's own Python, isolated (pip fetches the
    images' wheels); exit 2, saying what to do, where that Python has no pip (a uv-made environment
    has none unless asked for: gpuci names pip among its dependencies, so only a gpuci put on the path
    by hand meets this)."""
    import importlib.util

    from harness.errors import UsageError

    if importlib.util.find_spec("pip") is None:
        raise UsageError(
            f"gpuci fetches the images' wheels with pip, and the Python it runs on ({sys.executable}) has none "
            "(environments made by uv have no pip): install gpuci with its dependencies, which include pip "
            f"(`uv pip install` of gpuci does), or add pip there: `{sys.executable} -m ensurepip`."
        )
    return ["-m", "pip"]


def has_uv(wheelhouse: Path) -> bool:
    return any(wheelhouse.glob(f"uv-{UV_VERSION}-*.whl"))


def fetch_uv(wheelhouse: Path, ca_bundle: Path | None = None, root: Path | None = None) -> bool:
    """uv's pinned wheel in `wheelhouse`; False (and pip builds the image) where it cannot be had."""
    if has_uv(wheelhouse):
        if root is not None:  # fetched earlier without a checkout to record it in: its pin is its hash
            from harness.images.wheels import record_fetched, recorded, sha256_of

            known = recorded(root)
            new = [w for w in Path(wheelhouse).glob(f"uv-{UV_VERSION}-*.whl") if w.name not in known]
            record_fetched(root, Path(wheelhouse), {w.name for w in new if sha256_of(w) in UV_WHEELS.values()})
        return True
    from harness.host_python import run_python
    from harness.images.wheels import record_fetched

    machine = platform.machine()
    if machine not in UV_WHEELS:
        say(f"uv's wheel is pinned for {', '.join(UV_WHEELS)}, not {machine}: images are built with pip")
        return False
    wheelhouse = Path(os.path.abspath(wheelhouse))
    wheelhouse.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(wheelhouse))
    with tempfile.TemporaryDirectory(prefix="gpuci-uv-") as scratch:
        pinned = Path(scratch) / "uv.txt"
        pinned.write_text(f"{UV} --hash=sha256:{UV_WHEELS[machine]}\n")
        done = run_python(
            [*pip_command(), "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes",
             "--only-binary=:all:", f"--platform=manylinux_2_17_{machine}", f"--platform=manylinux2014_{machine}",
             "--python-version=3.10", "--implementation=cp",
             *(["--cert", os.path.abspath(ca_bundle)] if ca_bundle else []), "-r", str(pinned), "-d", str(wheelhouse)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    if root is not None:
        record_fetched(root, wheelhouse, set(os.listdir(wheelhouse)) - before)
    if done.returncode != 0 or not has_uv(wheelhouse):
        say(f"uv ({UV}) could not be fetched, so images are built with pip: {done.stderr.strip()[-200:]}")
        return False
    return True


def usable_uv(wheelhouse: Path, ca_bundle: Path | None = None, root: Path | None = None) -> str | None:
    """uv's binary for the host's resolving and fetching, its wheel fetched first; None: pip does them."""
    if os.environ.get("GPUCI_INSTALLER") == "pip" or not fetch_uv(wheelhouse, ca_bundle, root):
        return None
    return host_uv(wheelhouse)


def host_uv(wheelhouse: Path) -> str | None:
    """uv's binary for gpuci's own use on this host, unpacked once from its hash-checked wheel into the
    host cache; None (pip resolves) where this host is no Linux of a machine in UV_WHEELS, the wheel is
    not in the wheelhouse, or the binary does not run here. GPUCI_INSTALLER=pip asks for pip."""
    import subprocess
    import zipfile

    from harness.images.wheels import sha256_of

    machine = platform.machine()
    if sys.platform != "linux" or machine not in UV_WHEELS or os.environ.get("GPUCI_INSTALLER") == "pip":
        return None
    expected = UV_WHEELS[machine]
    binary = cache_dir("uv", f"{UV_VERSION}-{expected[:12]}") / "uv"
    if not binary.is_file():
        wheel = next((w for w in Path(wheelhouse).glob(f"uv-{UV_VERSION}-*_{machine}*.whl") if w.is_file()), None)
        if wheel is None or sha256_of(wheel) != expected:
            return None
        with zipfile.ZipFile(wheel) as archive:
            member = next((n for n in archive.namelist() if n.endswith(".data/scripts/uv")), None)
            if member is None:
                return None
            partial = binary.with_name(f".uv.{os.getpid()}")
            with archive.open(member) as source, open(partial, "wb") as target:
                shutil.copyfileobj(source, target)
        os.chmod(partial, 0o755)
        os.replace(partial, binary)
    try:
        works = subprocess.run([str(binary), "--version"], capture_output=True, timeout=30).returncode == 0
    except OSError:
        works = False
    return str(binary) if works else None


def cache_dir(*parts: str) -> Path:
    """gpuci's cache on this host (GPUCI_CACHE_DIR, else XDG_CACHE_HOME/gpuci, else ~/.cache/gpuci, as
    the lint's): the host's, shared by every checkout, never in one; each folder a real one, never a link."""
    from harness.untrusted import private_dir

    base = os.environ.get("GPUCI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gpuci"
    )
    from harness.errors import UsageError

    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        path = private_dir(Path(base), *parts)
    except OSError as error:  # a host set-up fault: a traceback would hide what to change
        raise UsageError(
            f"gpuci cannot use its cache folder {base} ({error.strerror or error}): set GPUCI_CACHE_DIR to a "
            "folder this user can write, or make that one writable, and run again."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(
            f"gpuci cannot write its cache folder {path}: set GPUCI_CACHE_DIR to a folder this user can "
            "write, or make that one writable, and run again."
        )
    return path
