"""The image recipes `gpuci init` writes, and gpuci's own `containers/` holds (a test keeps them equal).

One body for every platform: gpuci's test dependencies (a layer every project on the same base
shares), installed by uv from wheels the host fetched, on the platform's base (each vendor's
`BaseImage`: the Debian base for cpu, the vendors' PyTorch images for their GPU platforms by
default). gpuci appends the project's own layer (harness/images/context.py).
"""

from __future__ import annotations

from harness.declare.platforms import platform_names
from harness.errors import UsageError
from harness.gpu.vendors import for_platform, vendors

PREAMBLE = """\
# gpuci passes BASE_IMAGE; on hosts with no registry it is the local base from
# `python -m harness image bootstrap` (Debian packages through debootstrap).
"""
BODY = """\

# Set before any install: on storage drivers that diff whole trees (fuse-overlayfs), every step
# after the big layers costs seconds, and these need nothing installed.
ENV PATH=/opt/gpuci/venv/bin:$PATH \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    LANG=C.UTF-8
# Everything below needs no network: wheels come from the host's wheelhouse. uv installs them where
# its wheel is there and runs on this base; pip otherwise. GPUCI_INSTALLER=pip (a build arg) forces pip.
ARG GPUCI_INSTALLER=auto
# gpuci's own layer (its pinned test dependencies, uv, the extra CA bundle, its scripts): the same for
# every project on this base, so the engine's cache shares it.
COPY gpuci/ /opt/gpuci/
RUN python3 /opt/gpuci/install_wheels.py /opt/gpuci/build
# gpuci appends the project's layer: its resolved dependencies (gpuci.lock) and the project itself,
# copied and installed in one step each, after its labels.
"""
COMMON_REQUIREMENTS = """\
# Python packages of every gpuci image, pinned; wheels reach the image from a wheelhouse built
# on the host (no network inside the build). Pure-Python or abi3 wheels only, so one
# wheelhouse serves every base image's Python (3.10 and later).
pytest==8.4.2
pluggy==1.7.0
iniconfig==2.3.1
packaging==26.3
pygments==2.21.0
pytest-xdist==3.8.0
execnet==2.1.2
psutil==7.1.0
"""
# Each vendor's own lines after the common ones (in registry order): one file serves every image.
REQUIREMENTS = COMMON_REQUIREMENTS + "".join(v.image.requirements for v in vendors())


def dockerfile(platform: str) -> str:
    vendor = for_platform(platform)
    if vendor is None:
        raise UsageError(f"no image recipe for platform {platform!r}; gpuci knows {', '.join(platform_names())}.")
    body = BODY
    if vendor.image.env:
        body = body.replace("LANG=C.UTF-8\n", f"LANG=C.UTF-8 \\\n    {vendor.image.env}\n")
    return f"{vendor.image.comment}\n{PREAMBLE}ARG BASE_IMAGE={vendor.image.base}\nFROM ${{BASE_IMAGE}}\n{body}"
