"""The image recipes `gpuci init` writes, and gpuci's own `containers/` holds (a test keeps them equal).

One body for every platform: gpuci's test dependencies and the project's own requirements
([tool.gpuci] requirements, hashed into the content tag) installed from a host-filled wheelhouse
in one layer, on the platform's base (each vendor's `BaseImage`: the Debian base for cpu, the
vendors' PyTorch images for their GPU platforms by default).
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

# Everything below needs no network: wheels come from the host's wheelhouse. uv installs them where
# its wheel is there and runs on this base (much faster for large compiled wheels); pip otherwise.
# GPUCI_INSTALLER=pip (a build arg) forces pip.
ARG GPUCI_INSTALLER=auto
COPY requirements.txt project-requirements.txt extra-ca.crt /opt/gpuci/build/
COPY wheelhouse/ /opt/gpuci/build/wheelhouse/
# Bases without ensurepip (Debian's python3 with no python3-venv) make the venv with the system's pip.
RUN set -e; \\
    if [ -s /opt/gpuci/build/extra-ca.crt ]; then \\
        mkdir -p /etc/ssl/certs; cat /opt/gpuci/build/extra-ca.crt >> /etc/ssl/certs/ca-certificates.crt; \\
    fi; \\
    python3 -m venv --system-site-packages /opt/gpuci/venv 2>/dev/null \\
        || python3 -m venv --without-pip --system-site-packages /opt/gpuci/venv; \\
    cd /opt/gpuci/build; UV=""; \\
    for wheel in wheelhouse/uv-*.whl; do \\
        if [ "$GPUCI_INSTALLER" != pip ] && [ -f "$wheel" ] && python3 -m zipfile -e "$wheel" uv \\
            && chmod +x uv/uv-*.data/scripts/uv && uv/uv-*.data/scripts/uv --version >/dev/null 2>&1; then \\
            UV=$(echo /opt/gpuci/build/uv/uv-*.data/scripts/uv); \\
        fi; \\
    done; \\
    started=$(python3 -c 'import time; print(time.time())'); \\
    if [ -n "$UV" ]; then \\
        echo "gpuci: installing with $("$UV" --version)"; \\
        "$UV" pip install --offline --no-index --no-cache --compile-bytecode --python /opt/gpuci/venv/bin/python \\
            --find-links wheelhouse -r requirements.txt -r project-requirements.txt; \\
    else \\
        echo "gpuci: installing with pip"; \\
        /opt/gpuci/venv/bin/python -m pip install --quiet --no-index --no-cache-dir --disable-pip-version-check \\
            --find-links wheelhouse -r requirements.txt -r project-requirements.txt; \\
    fi; \\
    python3 -c 'import sys, time; print("gpuci: installed in %.1f s" % (time.time() - float(sys.argv[1])))' \\
        "$started"; \\
    cd /; rm -rf /opt/gpuci/build
ENV PATH=/opt/gpuci/venv/bin:$PATH \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    LANG=C.UTF-8
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
        body = body.rstrip("\n") + f" \\\n    {vendor.image.env}\n"
    return f"{vendor.image.comment}\n{PREAMBLE}ARG BASE_IMAGE={vendor.image.base}\nFROM ${{BASE_IMAGE}}\n{body}"
