"""The project's layer made outside the engine's builder: a throw-away container installs into host folders,
the host makes them one layer and `docker load`s it over gpuci's layer.

On a storage driver with no native diff (fuse-overlayfs) every builder step writes through FUSE and its
commit walks the whole tree: the project's `COPY`, `LABEL` and install `RUN` cost 60-80 s of a cold
image on the 2-core machine (bench/cold_image_bench.py). Here the container of gpuci's layer (no
network, the probes' limits, the host's own user) gets host folders bind-mounted where the image has
them: gpuci's venv (copied out of its layer first, so uv sees what is installed:
harness/images/venv_copy.py), the workspace with the checkout's copy, the build outputs' folder (and a
backend's build folder); the wheels come read-only, and `/tmp` is a host folder too. Its writes bypass
the overlay. The host then writes what changed as one deterministic tar (harness/images/layer_tar.py:
the same inputs give the same layer id), streamed into `docker load` as it is written, with the labels
in the image's config (harness/images/layer_load.py): no builder step at all above gpuci's layer, no
copy of the tar on disk. What the install writes anywhere else (caches, `/root`) is left out, as the
image never needed it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.console import printable, say
from harness.errors import GpuciError, ImageBuildError, UsageError
from harness.images import in_use, layer_containers
from harness.images.build_errors import project_failure
from harness.images.layer_load import image_config, load
from harness.images.layer_tar import FIXED_MTIME, Layer, snapshot
from harness.images.project_install import BUILD_DIRS, OUTPUTS_DIR, ProjectInstall
from harness.images.resolve import PROBE_POSTURE
from harness.images.system_layer import plain_lines
from harness.images.venv_copy import VENV, copy_out, remember

GPUCI_DIR = "opt/gpuci"
OWN_BUILD = "build"  # where the recipe copies gpuci's wheels: mounted there, read-only, never in a layer
DEPS = "/opt/gpuci/project-deps"
INSTALL_WHEELS = "/opt/gpuci/install_wheels.py"
COMPILE_LIST = "/tmp/gpuci-compile.txt"  # /tmp: a host folder of the build's, never in the layer
MAX_OUTPUT = 4 * 2**20
# A compiler or compileall needs more than the probes' 2 GiB; still bounded, still offline.
POSTURE = {**PROBE_POSTURE, "mem_limit": "8g", "pids_limit": 4096}


@dataclass(frozen=True)
class LayerJob:
    parent_id: str  # the image the container runs and the layer goes on
    tag: str
    labels: dict[str, str]
    command: list[str]
    roots: list[str]  # the image's folders (relative to /) the layer keeps: host folders under the stage
    read_only: dict[str, Path]  # image path -> host folder mounted read-only (wheels), never in the layer
    environment: dict[str, str]  # the recipe's build arguments, as a RUN step sees them
    install: ProjectInstall | None = None  # the project's, whose build errors are the user's
    kept: str | None = None  # a root copied out of the parent first: only its changes go into the layer
    remembered: str | None = None  # a folder the layer holds, kept on the host for the next job's `kept`


def image_roots(install: ProjectInstall | None) -> list[str]:
    """The image's folders the project's install writes and its layer keeps (relative to /)."""
    roots = [VENV]
    if install is not None:
        roots += [install.workspace.strip("/"), OUTPUTS_DIR.strip("/")]
        if install.backend in BUILD_DIRS:
            roots.append(BUILD_DIRS[install.backend].strip("/"))
    return roots


def project_job(parent_id: str, tag: str, labels: dict[str, str], install: ProjectInstall | None, deps: Path | None,
                environment: dict[str, str]) -> LayerJob:  # fmt: skip
    """The project's layer over gpuci's: its pins' wheels (`deps`: requirements.txt, wheels/), then itself."""
    steps = [f"python3 {INSTALL_WHEELS} {DEPS}"] if deps is not None else []
    if install is not None:
        if deps is not None:  # the pins' bytecode compiled beside the project's build, which often uses one core
            steps = [f"python3 {INSTALL_WHEELS} {DEPS} --compile-later {COMPILE_LIST}",
                     f"python3 {INSTALL_WHEELS} --compile {COMPILE_LIST} & compiling=$!"]  # fmt: skip
        steps.append(install.install_command())
        if deps is not None:
            steps.append("wait $compiling")
    steps.append(f"python3 {INSTALL_WHEELS} --forget-uv-times")  # the same files give the same layer
    command = ["sh", "-c", "set -e; " + "; ".join(steps)]
    read_only = {DEPS: deps} if deps is not None else {}
    return LayerJob(parent_id, tag, labels, command, image_roots(install), read_only, environment, install, VENV)


def own_job(parent_id: str, tag: str, build: Path, environment: dict[str, str]) -> LayerJob:
    """gpuci's own layer (what the recipe's `COPY gpuci/` and `RUN install_wheels.py` make) over the recipe's
    other steps: `build` holds its requirements and wheels, mounted read-only where the recipe copies them."""
    command = ["python3", INSTALL_WHEELS, f"/{GPUCI_DIR}/{OWN_BUILD}"]
    command = ["sh", "-c", f"set -e; {' '.join(command)}; python3 {INSTALL_WHEELS} --forget-uv-times"]
    read_only = {f"/{GPUCI_DIR}/{OWN_BUILD}": build}
    return LayerJob(parent_id, tag, {}, command, [GPUCI_DIR], read_only, environment, remembered=VENV)


def build_layer(client: Any, job: LayerJob, stage: Path, root: Path) -> str:
    """Run the job's container with its roots mounted from `stage` (what the layer starts with already
    there), load the layer under `job.tag`; the image's id. The containers are gone after, on error too;
    the stage is the caller's to remove."""
    for wheel in (w for folder in job.read_only.values() for w in folder.glob("wheels/*.whl")):
        os.utime(wheel, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)  # uv records a local wheel's time
    for folder in job.roots:
        (stage / folder).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="tmp-", dir=stage.parent))
    name = f"gpuci-layer-{uuid.uuid4().hex[:12]}"
    for left in layer_containers.remove_dead(client):  # a killed build's: it held its parent image in use
        say(f"removed the container {left} that a killed build left")
    what = "gpuci's layer" if job.install is None and job.kept is None else "the project's layer"
    with in_use.building(), in_use.pinned(job.parent_id):
        try:
            started = time.monotonic()
            before = {}
            if job.kept is not None:
                copy_out(client, job.parent_id, job.kept, name, stage / job.kept, scratch)
            _real_folders(stage, job.roots)  # before any walk or mount: a link there would be followed by both
            if job.kept is not None:
                before[job.kept] = snapshot(stage / job.kept)
                say(f"copied /{job.kept} out of {job.parent_id[7:19]} in {time.monotonic() - started:.1f} s")
            container = _create(client, job, name, _mounts(job, stage, scratch))
            _install(container, job, root)
            for path in job.read_only:  # the mount points the engine made: nothing of the image
                with contextlib.suppress(OSError):
                    (stage / path.strip("/")).rmdir()
            say(f"installed {what} in {time.monotonic() - started:.1f} s, in a container")
            written = time.monotonic()
            timed = tuple(root for root in job.roots if f"/{root}" in BUILD_DIRS.values())  # ninja's, checked
            layer = Layer(stage, job.roots, before, timed)  # sized and checked: nothing reaches the engine before
            config = image_config(client, job.parent_id, job.labels, f"gpuci: {what}")
            image_id = load(client, config, layer, job.tag)  # the container keeps the parent in use till here
            mb = layer.size / 2**20
            say(f"wrote and loaded {what} ({mb:.0f} MB, {layer.diff_id[:19]}…) as {job.tag} in "
                f"{time.monotonic() - written:.1f} s")  # fmt: skip
            if job.remembered is not None:
                remember(stage / job.remembered, image_id)
            return image_id
        finally:
            with contextlib.suppress(Exception):
                client.api.remove_container(name, force=True)


def _real_folders(stage: Path, roots: list[str]) -> None:
    """Each root, and every folder on its way from `stage`, a real folder. The parent image is the
    project's recipe (its `python3` runs gpuci's own layer), and gpuci's venv comes out of that layer: a
    venv made a link to a host folder was bind-mounted, Docker followed it, and the project's install
    wrote into the host folder."""
    for folder in roots:
        path = stage
        for part in folder.split("/"):
            path = path / part
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                target = os.readlink(path) if os.path.islink(path) else "not a folder"
                raise UsageError(
                    f"the image's /{folder} is a link ({str(target)[:200]}) or not a folder: the recipe "
                    "(containers/*/Dockerfile) replaced what gpuci's layer installs there; gpuci never mounts "
                    "or follows it. Nothing was built: keep the recipe's steps off /opt/gpuci."
                )


def _mounts(job: LayerJob, stage: Path, scratch: Path) -> list[Any]:
    from docker.types import Mount

    mounts = [Mount(f"/{folder}", str(stage / folder), type="bind") for folder in job.roots]
    mounts.append(Mount("/tmp", str(scratch), type="bind"))
    mounts += [Mount(path, str(host), type="bind", read_only=True) for path, host in job.read_only.items()]
    return mounts


def _create(client: Any, job: LayerJob, name: str, mounts: list[Any]) -> Any:
    environment = {**job.environment, "HOME": "/tmp", "TMPDIR": "/tmp", "UV_NO_CACHE": "1"}
    try:
        return client.containers.create(
            job.parent_id, job.command, name=name, entrypoint=[], user=f"{os.getuid()}:{os.getgid()}",
            environment=environment, mounts=mounts, labels=layer_containers.labels(), **POSTURE,
        )  # fmt: skip
    except Exception as exc:
        raise ImageBuildError(f"could not make the container that installs {job.tag}'s layer ({exc}).") from None


# gpuci's venv as its layer image holds it, one archive an image, in the host's cache (gc removes an
# archive whose image is gone: harness/run/cleanup/own_layers.py).
def _install(container: Any, job: LayerJob, root: Path) -> None:
    output = ""
    try:
        container.start()
        for chunk in container.logs(stream=True, follow=True):
            text = chunk.decode("utf-8", "replace")
            output = (output + text)[-MAX_OUTPUT:]
            if text.strip():
                sys.stderr.write(f"  {printable(text.rstrip(), keep_lines=True)}\n")  # the project's output
                sys.stderr.flush()
        status = int(container.wait().get("StatusCode", 1))
        if status != 0:  # read whole once it ended (a followed stream can end early): whose fault it is
            output = container.logs(stdout=True, stderr=True)[-MAX_OUTPUT:].decode("utf-8", "replace")
    except GpuciError:
        raise  # a cancel: the run reports it as such
    except Exception as exc:
        raise ImageBuildError(f"the container that installs {job.tag}'s layer failed ({exc}).") from None
    if status != 0:
        mine = project_failure(plain_lines(output), root, job.install)
        if mine is not None:
            raise mine
        last = next((line for line in reversed(plain_lines(output)) if line.strip()), "no output")
        raise ImageBuildError(f"installing {job.tag}'s layer failed (exit {status}): {last.strip()[:300]}")
