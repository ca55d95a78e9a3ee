"""gc of gpuci's own layer images and their cached venv archives (real engine): a recipe image goes once
no project image stands on it, never while a build on this host runs or pins it; an archive once its
image is gone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness.images import engine, in_use
from harness.images.layer_load import image_config, load
from harness.images.layer_tar import Layer
from harness.run.cleanup import gc, own_layers
from tests.images.test_engine import tiny_image

pytestmark = pytest.mark.xdist_group("reap")


def _loaded_over(client, parent: str, tag: str, labels: dict[str, str], folder: Path) -> str:
    """An image of one new layer loaded over `parent`, as gpuci loads its layers (no parent the engine knows)."""
    stage = folder / uuid.uuid4().hex
    (stage / "marker").mkdir(parents=True)
    (stage / "marker" / "body").write_text(uuid.uuid4().hex)
    return load(client, image_config(client, parent, labels, "test"), Layer(stage, ["marker"], {}), tag)


@pytest.fixture
def recipe_chain(docker_client, tmp_path, monkeypatch):
    """gpuci's layer as a build leaves it: the recipe's steps, gpuci's layer over them, a project image over that."""
    monkeypatch.setenv("GPUCI_LOCK_DIR", str(tmp_path))  # this test's build lock and pins only
    platform = f"ownlayers{uuid.uuid4().hex[:8]}"
    mark = f"gpuci.test-own-layers={platform}"
    steps = tiny_image(docker_client, mark, tag=f"gpuci/{platform}-recipe:a-steps")
    recipe = _loaded_over(docker_client, steps, f"gpuci/{platform}-recipe:a", {}, tmp_path)
    project = _loaded_over(
        docker_client, recipe, f"gpuci/{platform}:p", {"gpuci.content-hash": "p", "gpuci.platform": platform}, tmp_path
    )
    yield {"steps": steps, "recipe": recipe, "project": project, "labels": (mark,), "platform": platform}
    for image in (project, recipe, steps):
        engine.remove_image(docker_client, image, force=True)


def _found(client, chain, going=frozenset()) -> dict[str, str]:
    later = time.time() + 60  # every image here is older than that
    return {g.id: g.image_id for g in own_layers.recipe_images(client, later, chain["labels"], set(going))}


def test_a_recipe_image_goes_once_no_project_image_stands_on_it(docker_client, recipe_chain, tmp_path) -> None:
    chain, platform = recipe_chain, recipe_chain["platform"]
    assert _found(docker_client, chain) == {}  # the project image stands on both
    # gc removing the project image in the same pass: both go with it.
    both = {f"gpuci/{platform}-recipe:a": chain["recipe"], f"gpuci/{platform}-recipe:a-steps": chain["steps"]}
    assert _found(docker_client, chain, {chain["project"]}) == both
    # Younger than --older-than: kept.
    assert own_layers.recipe_images(docker_client, 0, chain["labels"], {chain["project"]}) == []
    # The project image is still there when the removal comes (kept by the engine, say): checked again, kept.
    found = own_layers.recipe_images(docker_client, time.time() + 60, chain["labels"], {chain["project"]})
    assert gc.remove_garbage(tmp_path, docker_client, found) == []
    assert engine.image_id(docker_client, chain["recipe"]) == chain["recipe"]
    assert engine.image_id(docker_client, chain["steps"]) == chain["steps"]
    engine.remove_image(docker_client, chain["project"])
    found = own_layers.recipe_images(docker_client, time.time() + 60, chain["labels"], set())
    assert {g.id for g in found} == set(both)
    assert gc.remove_garbage(tmp_path, docker_client, found) == []
    assert [engine.image_id(docker_client, chain[name]) for name in ("recipe", "steps")] == [None, None]


def test_a_recipe_image_is_kept_while_a_build_runs_or_pins_it(docker_client, recipe_chain, tmp_path) -> None:
    chain = recipe_chain
    engine.remove_image(docker_client, chain["project"])
    [recipe] = [g for g in own_layers.recipe_images(docker_client, time.time() + 60, chain["labels"], set())
                if g.image_id == chain["recipe"]]  # fmt: skip
    with in_use.building():  # a build between finding gpuci's layer and its project layer over it
        assert gc.remove_garbage(tmp_path, docker_client, [recipe]) == []
        assert engine.image_id(docker_client, chain["recipe"]) == chain["recipe"]
    with in_use.pinned(chain["recipe"]):  # the project layer's container runs on it
        assert gc.remove_garbage(tmp_path, docker_client, [recipe]) == []
        assert engine.image_id(docker_client, chain["recipe"]) == chain["recipe"]
    assert gc.remove_garbage(tmp_path, docker_client, [recipe]) == []
    assert engine.image_id(docker_client, chain["recipe"]) is None


def test_a_recipe_tag_that_names_another_image_by_now_is_left_alone(docker_client, recipe_chain, tmp_path) -> None:
    chain = recipe_chain
    engine.remove_image(docker_client, chain["project"])
    [recipe] = [g for g in own_layers.recipe_images(docker_client, time.time() + 60, chain["labels"], set())
                if g.image_id == chain["recipe"]]  # fmt: skip
    other = tiny_image(docker_client, chain["labels"][0], tag=recipe.id)  # a rebuild, a `docker tag`: after the list
    try:
        assert gc.remove_garbage(tmp_path, docker_client, [recipe]) == []
        assert engine.image_id(docker_client, recipe.id) == other
    finally:
        engine.remove_image(docker_client, other, force=True)


def test_an_archive_goes_once_its_image_is_gone(docker_client, recipe_chain, tmp_path, monkeypatch) -> None:
    from harness.images.installer import cache_dir

    monkeypatch.setenv("GPUCI_CACHE_DIR", str(tmp_path / "cache"))  # this test's archives only
    folder = cache_dir("layers")
    hex_of = {name: chain_id.removeprefix("sha256:") for name, chain_id in recipe_chain.items() if name != "labels"}
    kept = folder / f"{hex_of['recipe']}.venv.tar"
    gone = folder / f"{hashlib.sha256(b'no such image').hexdigest()}.venv.tar"
    ended = subprocess.Popen(["true"])
    ended.wait()  # a writer that is gone
    half = folder / f".{hex_of['steps']}.venv.tar.{ended.pid}"
    writing = folder / f".{hex_of['steps']}.venv.tar.{os.getpid()}"  # a live writer's
    for path in (kept, gone, half, writing):
        path.write_bytes(b"x" * 1024)
    found = own_layers.layer_archives(docker_client, set())
    assert {Path(g.id) for g in found} == {gone, half}
    with in_use.building():  # a build may be about to read one: kept
        assert gc.remove_garbage(tmp_path, docker_client, found) == []
        assert gone.exists() and half.exists()
    assert gc.remove_garbage(tmp_path, docker_client, found) == []
    assert not gone.exists() and not half.exists() and kept.exists() and writing.exists()
    # Its image going in the same pass: listed, but removed only once the image is gone.
    [going] = own_layers.layer_archives(docker_client, {recipe_chain["recipe"]})
    assert Path(going.id) == kept and "goes too" in going.detail
    assert gc.remove_garbage(tmp_path, docker_client, [going]) == [] and kept.exists()


def test_gc_lists_and_removes_an_unused_recipe_image(run_harness, docker_client, recipe_chain, tmp_path) -> None:
    chain, platform = recipe_chain, recipe_chain["platform"]
    scope = ("--label", chain["labels"][0], "--older-than", "0", "--root", str(tmp_path))  # this test's images only
    listed = run_harness("gc", *scope, "--keep", "1", GPUCI_LOCK_DIR=str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert "recipe-image" not in listed.stdout  # its project image is kept (--keep 1) and stands on it
    done = run_harness("gc", *scope, "--keep", "0", "--yes", GPUCI_LOCK_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = [line.split()[0] for line in done.stdout.splitlines() if platform in line]
    assert lines == ["image", "recipe-image", "recipe-image"]  # the project image first, then what it stood on
    assert [engine.image_id(docker_client, chain[n]) for n in ("project", "recipe", "steps")] == [None, None, None]


def test_one_pass_removes_a_killed_builds_container_and_the_recipe_image_it_held(
    docker_client, recipe_chain, tmp_path
) -> None:
    from harness.images import layer_containers

    chain = recipe_chain
    engine.remove_image(docker_client, chain["project"])
    ended = subprocess.Popen(["true"])
    ended.wait()
    creator = {**layer_containers.labels(), layer_containers.PID: str(ended.pid)}  # a build that is gone
    key, value = chain["labels"][0].split("=")
    container = docker_client.api.create_container(chain["recipe"], ["/marker"], labels={**creator, key: value})
    try:
        assert own_layers.recipe_images(docker_client, time.time() + 60, chain["labels"], set()) == []  # held
        # (Host-wide kinds, another suite's secrets folders say, are not this test's to remove.)
        kinds = ("layer-container", "recipe-image", "image")
        found = [g for g in gc.find_garbage(tmp_path, docker_client, 0, -60, chain["labels"]) if g.kind in kinds]
        assert [g.kind for g in found] == ["layer-container", "recipe-image", "recipe-image"]
        assert gc.remove_garbage(tmp_path, docker_client, found) == []
        assert not engine.container_exists(docker_client, container["Id"])
        assert [engine.image_id(docker_client, chain[n]) for n in ("recipe", "steps")] == [None, None]
    finally:
        engine.remove_container(docker_client, container["Id"])
