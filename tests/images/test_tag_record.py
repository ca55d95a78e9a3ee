"""Each content tag's image, recorded per engine: a tag moved onto another image is built again."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from harness.images import engine
from harness.images.build import ensure
from harness.images.recipe import recipe_for
from harness.images.tag_record import TagRecord, _name, agrees, folder, recorded, remember
from tests.conftest import ROOT
from tests.images.test_build import _base


def test_a_record_is_read_back_and_one_gpuci_did_not_write_is_none(docker_client, tmp_path: Path) -> None:
    tag = f"gpuci-test-record/{uuid.uuid4().hex[:12]}:x"
    assert recorded(docker_client, tag) is None
    record = TagRecord(tag, "sha256:" + "a" * 64, "c" * 64, "reg:5000/gpuci-cpu@sha256:" + "b" * 64)
    remember(docker_client, record)
    assert recorded(docker_client, tag) == record
    assert folder(docker_client).is_relative_to(os.environ["GPUCI_CACHE_DIR"])  # the host's cache, no checkout
    path = folder(docker_client) / _name(tag)
    for planted in ('{"tag": "other:x", "id": "sha256:x", "content_hash": "c"}', "[" * 100000, '{"tag": 1}'):
        path.write_text(planted)
        assert recorded(docker_client, tag) is None
    path.unlink()
    (tmp_path / "elsewhere.json").write_text(f'{{"tag": "{tag}", "id": "sha256:x", "content_hash": "c"}}')
    path.symlink_to(tmp_path / "elsewhere.json")  # never followed
    assert recorded(docker_client, tag) is None
    path.unlink()


def test_a_tag_moved_onto_another_image_is_built_again(docker_client, cpu_image, capfd) -> None:
    marker = uuid.uuid4().hex[:12]
    base = _base(docker_client, marker, cpu_image.tag)
    recipe = recipe_for(ROOT, "cpu", base_image=base)
    built = None
    try:
        # Someone else's image under the recipe's content tag, where gpuci recorded another.
        repository, tag = recipe.tag.rsplit(":", 1)
        docker_client.api.tag(base, repository, tag)
        remember(docker_client, TagRecord(recipe.tag, "sha256:" + "0" * 64, recipe.content_hash()))
        built = ensure(docker_client, recipe, ROOT)
        assert "another image took the tag" in capfd.readouterr().err
        assert built.built and built.id != engine.image_id(docker_client, base)
        assert recorded(docker_client, recipe.tag) == TagRecord(recipe.tag, built.id, recipe.content_hash())
        again = ensure(docker_client, recipe, ROOT)
        assert not again.built and again.id == built.id
        assert agrees(docker_client, recipe.tag, built.id, recipe.content_hash())
    finally:
        for ref in (recipe.tag, base):
            engine.remove_image(docker_client, ref, force=True)


def test_a_tag_seen_first_is_recorded_as_found(docker_client, cpu_image) -> None:
    again = ensure(docker_client, recipe_for(ROOT, "cpu"), ROOT)
    assert recorded(docker_client, again.tag).id == cpu_image.id  # type: ignore[union-attr]
