"""Why pip found nothing for a requirement, in words that fit the cause.

pip says the same "from versions: none" for a name no index has and for a package with no wheel for
the image's Python; only the second is fixed by a pin or another base. One more question to the
index (`pip index versions`, for any Python, sdists too), asked only after a resolution failed,
tells them apart. An index that cannot be asked leaves both causes named.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from harness.images.installer import pip_command

_VERSIONS = re.compile(r"Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
SHOWN_VERSIONS = 6


def advice(requirement: str, pip_output: str, python: str, ca_bundle: Path | None = None) -> str:
    """The sentence after "FILE:LINE: the requirement 'x'": what is wrong and what to do."""
    found = _VERSIONS.search(pip_output)
    versions = [v.strip() for v in found.group(2).split(",")] if found else []
    if versions and versions != ["none"]:  # wheels exist; the specifier excludes every one of them
        shown = ", ".join(versions[-SHOWN_VERSIONS:])
        return (
            f"matches none of the versions with a wheel for the image's Python {python} (the newest: {shown}); "
            "correct or loosen its version."
        )
    named = _NAME.match(requirement)
    known = on_index(named.group(0), ca_bundle) if named else None
    if known is False:
        return (
            "names a package the package index does not have; check its spelling, or the index pip uses "
            "(PIP_INDEX_URL, pip.conf)."
        )
    has_no_wheel = (
        f"has no wheel for the image's Python {python}: pin a version that ships wheels for it, or choose "
        "a base image with a Python it supports."
    )
    return has_no_wheel if known else f"is not on the package index, or {has_no_wheel}"


def on_index(name: str, ca_bundle: Path | None = None) -> bool | None:
    """Whether the index has any release of `name` (for any Python, sdists included); None where the
    index could not be asked."""
    from harness.host_python import run_python

    cert = ["--cert", os.path.abspath(ca_bundle)] if ca_bundle else []
    try:
        done = run_python(
            [*pip_command(), "index", "versions", "--disable-pip-version-check", *cert, name],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 0:
        return True
    return False if "No matching distribution found" in done.stderr else None
