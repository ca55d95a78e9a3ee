"""Which Pythons gpuci's Debian base offers: each is the Debian release that ships it.

A project picks with `[tool.gpuci] python = "3.13"` (or a list: a session per version, as nox
parametrizes), a step with `python: "3.13"`, a run with `--python 3.13`. The choice picks the
suite gpuci's base is bootstrapped from; a vendor's base image (the cuda and rocm defaults, or
`--base-image`) runs the Python it ships, which gpuci asks it rather than assuming.
"""

from __future__ import annotations

import os

from harness.errors import UsageError

# Debian's oldstable, stable and testing, and the Python 3 each ships (November 2026).
SUITES = {"3.11": "bookworm", "3.13": "trixie", "3.14": "forky"}
DEFAULT = "3.11"


def suite_for(version: str, origin: str) -> str:
    if version not in SUITES:
        offered = ", ".join(f"{v} ({s})" for v, s in SUITES.items())
        raise UsageError(
            f"{origin}: Python {version!r} is not one gpuci's Debian base offers; choose one of {offered}, or "
            "give a base image that has it (--base-image)."
        )
    return SUITES[version]


def builds_on_local_base(platform: str, base_image: str | None = None) -> bool:
    """Whether a platform's image builds on gpuci's Debian base (where a Python can be chosen)."""
    return (base_image or os.environ.get("GPUCI_BASE_IMAGE") or ("local" if platform == "cpu" else "")) == "local"
