"""uv for the images' installs, where it can be had: its wheel put in the wheelhouse beside the rest.

The recipes install with uv when its wheel is in the build's wheelhouse and its binary runs on the
base image, and with pip otherwise (`bench/install_bench.py` measures both on a real project's
dependency layer). The wheel is fetched once, pinned, for the host's machine; on a host that cannot
fetch it (air-gapped, with a wheelhouse filled without it) images are built with pip, as before.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from harness.console import say

UV = "uv==0.13.9"


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
    version = UV.split("==")[1]
    return any(wheelhouse.glob(f"uv-{version}-*.whl"))


def fetch_uv(wheelhouse: Path, ca_bundle: Path | None = None, root: Path | None = None) -> bool:
    """uv's pinned wheel in `wheelhouse`; False (and pip builds the image) where it cannot be had."""
    if has_uv(wheelhouse):
        return True
    from harness.host_python import run_python
    from harness.images.wheels import record_fetched

    machine = platform.machine()
    wheelhouse = Path(os.path.abspath(wheelhouse))
    before = set(os.listdir(wheelhouse)) if wheelhouse.is_dir() else set()
    done = run_python(
        [*pip_command(), "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", f"--platform=manylinux_2_17_{machine}", f"--platform=manylinux2014_{machine}",
         "--python-version=3.10", "--implementation=cp", *(["--cert", os.path.abspath(ca_bundle)] if ca_bundle else []),
         UV, "-d", str(wheelhouse)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if root is not None:
        record_fetched(root, wheelhouse, set(os.listdir(wheelhouse)) - before)
    if done.returncode != 0 or not has_uv(wheelhouse):
        say(f"uv ({UV}) could not be fetched, so images are built with pip: {done.stderr.strip()[-200:]}")
        return False
    return True
