from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.images.build import ensure
from harness.images.recipe import recipe_for
from tests.conftest import ROOT


def copy_recipes(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "containers", tmp_path / "containers")
    return tmp_path


def test_the_tag_is_a_hash_of_the_recipe(tmp_path: Path) -> None:
    root = copy_recipes(tmp_path)
    recipe = recipe_for(root, "cpu")
    first = recipe.tag  # the tag reads the files: keep the value from before the edits
    assert first == recipe_for(ROOT, "cpu").tag  # same content, other checkout: same tag
    assert first.startswith("gpuci/cpu:")
    (root / "containers" / "cpu" / "Dockerfile").write_text(recipe.dockerfile.read_text() + "\nENV X=1\n")
    assert recipe_for(root, "cpu").tag != first
    assert recipe_for(root, "cpu", base_image="debian:12").tag != recipe_for(root, "cpu").tag
    (root / "containers" / "requirements.txt").write_text("pytest==8.4.2\n")
    assert recipe_for(root, "cpu", base_image="debian:12").tag != first


def test_a_missing_recipe_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Dockerfile is missing"):
        recipe_for(tmp_path, "cpu")


def test_ensure_of_an_existing_tag_builds_nothing(docker_client, cpu_image) -> None:
    recipe = recipe_for(ROOT, "cpu")
    before = len(docker_client.images.list(all=True))
    started = time.monotonic()
    again = ensure(docker_client, recipe, ROOT)
    assert again.built is False and again.tag == cpu_image.tag and again.id == cpu_image.id
    assert len(docker_client.images.list(all=True)) == before
    assert time.monotonic() - started < 5  # generous: the figure itself is in bench/


@pytest.mark.parametrize("platform", ["cuda", "rocm"])
def test_gpu_recipes_build_past_their_base_layer_on_the_local_base(platform, docker_client, cpu_image) -> None:
    recipe = recipe_for(ROOT, platform, base_image="local")
    ensured = ensure(docker_client, recipe, ROOT)
    out = docker_client.containers.run(
        ensured.tag, ["python3", "-c", "import pytest, xdist, psutil; print('ok')"], remove=True
    )
    assert out.strip() == b"ok"
    labels = docker_client.images.get(ensured.tag).labels
    assert labels["gpuci.platform"] == platform and labels["gpuci.content-hash"] == recipe.content_hash()


def test_a_ca_bundle_reaches_the_image(docker_client, cpu_image, tmp_path: Path) -> None:
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nZ3BVY2ktdGVzdC1jYQ==\n-----END CERTIFICATE-----\n")
    recipe = recipe_for(ROOT, "cpu", base_image=cpu_image.tag, ca_bundle=bundle)
    ensured = ensure(docker_client, recipe, ROOT)
    out = docker_client.containers.run(
        ensured.tag, ["tail", "-n", "2", "/etc/ssl/certs/ca-certificates.crt"], remove=True
    )
    assert b"Z3BVY2ktdGVzdC1jYQ==" in out
