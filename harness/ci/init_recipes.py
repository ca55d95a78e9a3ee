"""The image recipes `gpuci init` writes, and gpuci's own `containers/` holds (a test keeps them equal).

One body for every platform: gpuci's test dependencies (a layer every project on the same base
shares), installed by uv from wheels the host fetched, on the platform's base (the Debian base for cpu,
the vendors' PyTorch images for cuda and rocm by default). gpuci appends the project's own layer
(harness/images/context.py).
"""

from __future__ import annotations

HEADERS = {
    "cpu": ("# gpuci cpu image: the embedded default: no GPU, runs anywhere Docker runs.", "python:3.11-slim-bookworm"),
    "cuda": (
        "# gpuci cuda image: NVIDIA GPUs; the vendor's PyTorch image by default.",
        "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
    ),
    "rocm": (
        "# gpuci rocm image: AMD GPUs; the vendor's PyTorch image by default.",
        "rocm/pytorch:rocm6.2.4_ubuntu22.04_py3.10_pytorch_release_2.3.0",
    ),
}
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
EXTRA_ENV = {"cuda": "NVIDIA_DRIVER_CAPABILITIES=compute,utility"}
REQUIREMENTS = """\
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
# NVML for gpuci's VRAM guard inside CUDA images (pure Python; it finds no driver elsewhere and steps aside).
nvidia-ml-py==13.615.71
"""


def dockerfile(platform: str) -> str:
    comment, base = HEADERS[platform]
    body = BODY
    if platform in EXTRA_ENV:
        body = body.replace("LANG=C.UTF-8\n", f"LANG=C.UTF-8 \\\n    {EXTRA_ENV[platform]}\n")
    return f"{comment}\n{PREAMBLE}ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\n{body}"
