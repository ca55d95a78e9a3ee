"""uv for the images' installs, where it can be had: its wheel put in the wheelhouse beside the rest.

The recipes install with uv when its wheel is in the build's wheelhouse and its binary runs on the
base image, and with pip otherwise (`bench/install_bench.py` measures both on a real project's
dependency layer). The wheel is fetched once, pinned, for the host's machine; on a host that cannot
fetch it (air-gapped, with a wheelhouse filled without it) images are built with pip, as before.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from harness.console import say

UV = "uv==0.13.9"


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
        ["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
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
