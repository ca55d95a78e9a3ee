"""The project's layer made outside the engine's builder: a throw-away container installs into host folders,
the host makes them one layer and `docker load`s it over gpuci's layer.

On a storage driver with no native diff (fuse-overlayfs) every builder step writes through FUSE and its
commit walks the whole tree: the project's `COPY`, `LABEL` and install `RUN` cost 60-80 s of a cold
image on the 2-core machine (bench/cold_image_bench.py). Here the container of gpuci's layer (no
network, the probes' limits, the host's own user) gets host folders bind-mounted where the image has
them: gpuci's venv (copied out of its layer first, so uv sees what is installed), the workspace with
the checkout's copy, the build outputs' folder (and a backend's build folder); the wheels come
read-only, and `/tmp` is a host folder too. Its writes bypass the overlay. The host then writes what
changed as one deterministic tar (harness/images/layer_tar.py: the same inputs give the same layer id)
and loads it with the labels in the image's config (harness/images/layer_load.py): no builder step at
all above gpuci's layer. What the install writes anywhere else (caches, `/root`) is left out, as
the image never needed it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.console import printable, say
from harness.errors import GpuciError, ImageBuildError
from harness.images import in_use
from harness.images.build_errors import project_failure
from harness.images.layer_load import image_config, load
from harness.images.layer_tar import snapshot, write_layer
from harness.images.project_install import BUILD_DIRS, OUTPUTS_DIR, ProjectInstall
from harness.images.resolve import PROBE_POSTURE
from harness.images.system_layer import plain_lines

VENV = "opt/gpuci/venv"
DEPS = "/opt/gpuci/project-deps"
INSTALL_WHEELS = "/opt/gpuci/install_wheels.py"
MAX_OUTPUT = 4 * 2**20
# A compiler or compileall needs more than the probes' 2 GiB; still bounded, still offline.
POSTURE = {**PROBE_POSTURE, "mem_limit": "8g", "pids_limit": 4096}


@dataclass(frozen=True)
class LayerJob:
    own_id: str  # gpuci's layer: the recipe's image, built by the engine's builder and shared
    tag: str
    labels: dict[str, str]
    install: ProjectInstall | None
    deps: Path | None  # requirements.txt and wheels/ of the project's pins, mounted read-only
    environment: dict[str, str]  # the recipe's build arguments, as a RUN step sees them


def image_roots(install: ProjectInstall | None) -> list[str]:
    """The image's folders the install writes and the layer keeps (relative to /)."""
    roots = [VENV]
    if install is not None:
        roots += [install.workspace.strip("/"), OUTPUTS_DIR.strip("/")]
        if install.backend in BUILD_DIRS:
            roots.append(BUILD_DIRS[install.backend].strip("/"))
    return roots


def command(job: LayerJob) -> list[str]:
    steps = [f"python3 {INSTALL_WHEELS} {DEPS}"] if job.deps is not None else []
    if job.install is not None:
        steps.append(job.install.install_command())
    return ["sh", "-c", "set -e; " + "; ".join(steps)]


def build_layer(client: Any, job: LayerJob, stage: Path, root: Path) -> str:
    """Install into `stage` (the checkout's copy already at its workspace under it), load the image under
    `job.tag`; its id. The container and every host folder it wrote are gone after, on error too."""
    roots = image_roots(job.install)
    for folder in roots:
        (stage / folder).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="tmp-", dir=stage.parent))
    name = f"gpuci-project-layer-{uuid.uuid4().hex[:12]}"
    with in_use.building(), in_use.pinned(job.own_id):
        try:
            started = time.monotonic()
            _copy_venv(client, job, name, stage / VENV, scratch)
            container = _create(client, job, name, _mounts(job, stage, roots, scratch))
            before = {VENV: snapshot(stage / VENV)}
            _install(container, job, root)
            say(f"installed the project's layer in {time.monotonic() - started:.1f} s, in a container of gpuci's layer")
            written = time.monotonic()
            layer = stage.parent / "layer.tar"
            with open(layer, "wb") as out:
                diff_id = write_layer(stage, roots, before, out)
            mb = layer.stat().st_size / 2**20
            say(f"wrote the project's layer ({mb:.0f} MB, {diff_id[:19]}…) in {time.monotonic() - written:.1f} s")
            loading = time.monotonic()
            config = image_config(client, job.own_id, diff_id, job.labels, "gpuci: the project's layer")
            image_id = load(client, config, layer, job.tag)  # the container keeps gpuci's layer in use till here
            say(f"loaded {job.tag} in {time.monotonic() - loading:.1f} s")
            return image_id
        finally:
            with contextlib.suppress(Exception):
                client.api.remove_container(name, force=True)


def _mounts(job: LayerJob, stage: Path, roots: list[str], scratch: Path) -> list[Any]:
    from docker.types import Mount

    mounts = [Mount(f"/{folder}", str(stage / folder), type="bind") for folder in roots]
    mounts.append(Mount("/tmp", str(scratch), type="bind"))
    if job.deps is not None:
        mounts.append(Mount(DEPS, str(job.deps), type="bind", read_only=True))
    return mounts


def _create(client: Any, job: LayerJob, name: str, mounts: list[Any]) -> Any:
    environment = {**job.environment, "HOME": "/tmp", "TMPDIR": "/tmp", "UV_NO_CACHE": "1"}
    try:
        return client.containers.create(
            job.own_id, command(job), name=name, entrypoint=[], user=f"{os.getuid()}:{os.getgid()}",
            environment=environment, mounts=mounts, labels={"gpuci.purpose": "project-layer"}, **POSTURE,
        )  # fmt: skip
    except Exception as exc:
        raise ImageBuildError(f"could not start the container that installs {job.tag}'s layer ({exc}).") from None


def _copy_venv(client: Any, job: LayerJob, name: str, venv: Path, scratch: Path) -> None:
    """gpuci's venv out of its layer into the folder mounted over it (uv sees what is installed; only
    what changes goes into the project's layer), by a container never started and with no mount (the
    archive of a path is read through the container's mounts). gpuci's own layer: links kept."""
    archive = scratch / "venv.tar"
    try:
        client.api.create_container(job.own_id, ["true"], name=name, labels={"gpuci.purpose": "project-layer"})
        stream, _ = client.api.get_archive(name, f"/{VENV}")
        with open(archive, "wb") as out:
            for chunk in stream:
                out.write(chunk)
        with tarfile.open(archive) as tar:
            tar.extractall(venv.parent, filter="tar")
    except Exception as exc:
        raise ImageBuildError(f"could not copy gpuci's venv out of its layer ({exc}).") from None
    finally:
        archive.unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            client.api.remove_container(name, force=True)


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
