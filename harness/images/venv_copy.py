"""gpuci's venv, copied out of gpuci's layer onto the host, where the project's layer container gets it
mounted (uv sees what is installed; only what changes goes into the layer), and kept in the host cache
as an archive so the next project's copy needs no container.

The copy comes out of an image whose recipe steps ran as root and may have written into the venv: it is
read as input. Its archive's headers are read before `tar` makes anything (no device node, no name
leaving the folder, a bounded count), and its zeros are counted as it streams in (a `truncate -s 60G`
costs the image nothing and the host every byte).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from harness.console import printable
from harness.errors import ImageBuildError, UsageError
from harness.images import layer_containers
from harness.images.installer import cache_dir
from harness.images.layer_tar import MAX_ENTRIES

VENV = "opt/gpuci/venv"
# gpuci's venv copied out of an image the recipe's own steps may have written into (a recipe with steps
# after gpuci's two is the builder's whole): zeros cost the image nothing (`truncate -s 60G`) and the host
# their every byte, in the build folder and again in its cache. Counted in blocks of the archive that are
# all zeros; a venv of packages has few.
ZERO_BLOCK = 64 * 2**10
MAX_KEPT_ZEROS = 256 * 2**20

ARCHIVES, ARCHIVE_SUFFIX = "layers", ".venv.tar"


def remembered(image_id: str) -> Path:
    return cache_dir(ARCHIVES) / f"{image_id.split(':')[-1]}{ARCHIVE_SUFFIX}"


def remember(folder: Path, image_id: str) -> None:
    """gpuci's venv as its layer holds it, on the host: the next project's copy of it needs no container
    (reading a path out of a container's file system is slow on a loaded fuse-overlayfs engine)."""
    path = remembered(image_id)
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        return  # a link or a file where the venv should be: never kept (project_layer refuses it)
    part = path.with_name(f".{path.name}.{os.getpid()}")
    with tarfile.open(part, "w") as tar:
        tar.add(folder, arcname=folder.name)  # links as links
    part.replace(path)


def _extract(archive: Path, into: Path) -> None:
    """An archive of gpuci's venv into `into`, links kept as links: by `tar` (several times faster than
    tarfile on a loaded machine), else tarfile. Its headers are read first: a copy out of an image holds what
    the recipe's steps put there as root, and a device node or a name leaving the folder is never made."""
    _check_members(archive)
    if shutil.which("tar"):
        done = subprocess.run(["tar", "-xf", str(archive), "-C", str(into)], capture_output=True)
        if done.returncode != 0:
            why = printable(done.stderr.decode(errors="replace").strip()[-300:])
            raise ImageBuildError(f"could not extract gpuci's venv from {archive} (tar: {why}).")
        return
    with tarfile.open(archive) as tar:
        # Checked above; "tar" keeps the venv's absolute link to its Python, which "data" (3.14's default) refuses.
        tar.extractall(into, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))


def _check_members(archive: Path) -> None:
    with tarfile.open(archive) as tar:  # headers only: each member's bytes are skipped
        for count, member in enumerate(tar):
            if count >= MAX_ENTRIES:
                raise UsageError(
                    f"gpuci's venv in the image the project's layer goes on holds over {MAX_ENTRIES} files: the "
                    "recipe's own steps (containers/*/Dockerfile) put them there. Nothing was built: keep the "
                    "recipe's steps off /opt/gpuci."
                )
            if member.name.startswith("/") or ".." in member.name.split("/") or member.ischr() or member.isblk():
                raise UsageError(
                    f"gpuci's venv in the image the project's layer goes on holds {printable(member.name[:200])} "
                    f"({'a device node' if member.ischr() or member.isblk() else 'a name outside it'}): the recipe's "
                    "own steps (containers/*/Dockerfile) put it there; gpuci never makes it on this host. Nothing "
                    "was built: keep the recipe's steps off /opt/gpuci."
                )


def copy_out(client: Any, parent_id: str, kept: str, name: str, into: Path, scratch: Path) -> None:
    """A folder of the parent (gpuci's venv) into the host folder mounted over it (uv sees what is installed;
    only what changes goes into the layer), by a container never started and with no mount (a path's
    archive is read through the container's mounts). gpuci's own layer: links kept as they are."""
    archive = scratch / "kept.tar"
    if kept == VENV and remembered(parent_id).is_file():  # gpuci's own archive, in the host's cache
        _extract(remembered(parent_id), into.parent)
        return
    response = None
    try:
        client.api.create_container(parent_id, ["true"], name=name, labels=layer_containers.labels())
        # The SDK's get_archive, with its response in hand: the engine holds the container while the archive is
        # unread, and a removal before the response is closed waited the client's whole timeout (600 s).
        response = client.api._get(
            client.api._url("/containers/{0}/archive", name), params={"path": f"/{kept}"}, stream=True
        )
        client.api._raise_for_status(response)
        zeros = _ZeroBlocks(kept)
        with open(archive, "wb") as out:
            for chunk in response.iter_content(2**20, False):
                zeros.count(chunk)  # before it is written
                out.write(chunk)
        _extract(archive, into.parent)
        if kept == VENV:
            archive.replace(remembered(parent_id))  # the next project's copy needs no container
    except UsageError:
        raise
    except Exception as exc:
        raise ImageBuildError(f"could not copy /{kept} out of gpuci's layer ({exc}).") from None
    finally:
        if response is not None:
            response.close()
        archive.unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            client.api.remove_container(name, force=True)


class _ZeroBlocks:
    """The blocks of an archive, as it streams in, that are all zeros: over MAX_KEPT_ZEROS is exit 2."""

    def __init__(self, folder: str) -> None:
        self.folder, self.zeros, self.tail = folder, 0, b""

    def count(self, chunk: bytes) -> None:
        data = self.tail + chunk
        whole = len(data) - len(data) % ZERO_BLOCK
        for start in range(0, whole, ZERO_BLOCK):
            if data.count(0, start, start + ZERO_BLOCK) == ZERO_BLOCK:
                self.zeros += ZERO_BLOCK
        self.tail = data[whole:]
        if self.zeros > MAX_KEPT_ZEROS:
            raise UsageError(
                f"/{self.folder} in the image the project's layer goes on holds over {MAX_KEPT_ZEROS // 2**20} MiB "
                "of zeros (a file made by truncate, a seek): the recipe's own steps (containers/*/Dockerfile) put "
                "them there, and copying that folder onto this host would write every one. No package ships "
                "them; keep the recipe's steps off /opt/gpuci. Nothing was built."
            )
