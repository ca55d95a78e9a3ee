"""gpuci's venv copied out of gpuci's layer onto the host (harness/images/venv_copy.py), read as input: what a
recipe's steps put there (zeros, a device node) is never written on the host, and nothing is left behind."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from harness.errors import UsageError
from tests.images.test_project_layer import _leftovers, _project


def _refused(docker_client, root: Path, mark: str, match: str) -> None:
    """The build of `root` (a recipe step marked `mark`) refused with `match`, nothing left; the recipe's
    image, this test's own, removed."""
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    made = None
    try:
        with pytest.raises(UsageError, match=match):
            made = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
        assert _leftovers(docker_client, root) == ([], [])
    finally:
        if made is not None:
            docker_client.images.remove(made.tag)
        for image in docker_client.images.list(name="gpuci/cpu-recipe"):
            if any(mark in (row.get("CreatedBy") or "") for row in image.history()):
                docker_client.images.remove(image.id, force=True)


def test_zeros_a_recipe_puts_in_gpucis_venv_are_never_copied_to_the_host(docker_client, tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): a recipe with a step after gpuci's two (its layer is then the builder's) ran
    `truncate -s 300M /opt/gpuci/venv/zeros`: the project's layer copied gpuci's venv out of that image
    onto the host, 300 MB of zeros written into the build folder and again into the user's cache, where
    the archive stays (60G: the host's disk, from a file that takes none)."""
    from harness.images.installer import cache_dir

    mark = f"gpuci-test-zeros-{uuid.uuid4().hex}"
    root = _project(tmp_path / "p", "markupsafe==3.0.3", "from setuptools import setup\nsetup(name='z', version='1')\n")
    dockerfile = root / "containers" / "cpu" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN truncate -s 300M /opt/gpuci/venv/zeros # {mark}\n")
    cached = cache_dir("layers")
    before = {p.name for p in cached.iterdir()}
    _refused(docker_client, root, mark, "zeros")
    assert {p.name for p in cached.iterdir()} == before


def test_a_device_node_a_recipe_puts_in_gpucis_venv_is_never_made_on_the_host(docker_client, tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): a recipe step after gpuci's two ran, as the builder's root, `mknod
    /opt/gpuci/venv/disk b 8 0; chmod 666`: the host's `tar -xf` of that venv (gpuci as root) made a
    world-writable node of the host's first disk in the build folder (a non-root gpuci's tar failed on it:
    exit 75, retried, for the recipe's doing)."""

    mark = f"gpuci-test-device-{uuid.uuid4().hex}"
    root = _project(tmp_path / "p", "markupsafe==3.0.3", "from setuptools import setup\nsetup(name='d', version='1')\n")
    dockerfile = root / "containers" / "cpu" / "Dockerfile"
    step = f"RUN mknod /opt/gpuci/venv/disk b 8 0 && chmod 666 /opt/gpuci/venv/disk # {mark}\n"
    dockerfile.write_text(dockerfile.read_text() + step)
    _refused(docker_client, root, mark, "device")
