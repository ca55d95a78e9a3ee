from __future__ import annotations

import io
import shutil
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from harness.errors import ExitCode, UsageError
from harness.images import engine
from harness.images.build import ParentImageGone, build_in_context, ensure
from harness.images.recipe import recipe_for
from tests.conftest import ROOT, SESSION_LABEL


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
    since = int(time.time()) - 1
    again = ensure(docker_client, recipe, ROOT)
    assert again.built is False and again.tag == cpu_image.tag and again.id == cpu_image.id
    # A build of the recipe would tag its content tag anew: the engine's events for that tag alone
    # (a neighbour's builds on a shared engine are not counted), none since the call began.
    events = docker_client.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"type": "image", "image": cpu_image.tag}
    )
    assert [e for e in events if e.get("Action") in ("tag", "build")] == []  # its time: bench/


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


def _base(client, marker: str, parent: str) -> str:
    """A base image of this test's own (the cpu image and two labels), made in a moment; its tag."""
    tag = f"gpuci-test-base/{marker}:x"
    dockerfile = f"FROM {parent}\nLABEL {SESSION_LABEL} gpuci.test-base={marker}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    # rm and forcerm: docker-py's API client keeps each step's container unless told (they stayed
    # behind as "Created" containers after every run of the suite).
    stream = client.api.build(
        fileobj=io.BytesIO(context.getvalue()), custom_context=True, tag=tag, decode=True, rm=True, forcerm=True
    )
    for chunk in stream:
        assert "error" not in chunk, chunk
    return tag


def _remove_base_mid_build(client, base: str, replacement: str | None) -> threading.Thread:
    """Another process cleaning the engine: removes the base once a build step ran on it (and, with a
    `replacement`, first moves the base's tag onto that image, as a pull of a newer base would)."""
    base_id = engine.image_id(client, base)

    def remove() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(c.image_id == base_id for c in engine.list_containers(client)):
                if replacement:
                    repository, tag = base.rsplit(":", 1)
                    client.api.tag(replacement, repository, tag, force=True)
                try:  # the engine refuses while the step's container runs: until it has stopped
                    engine.remove_image(client, base_id, force=True)
                except engine.ImageInUse:
                    time.sleep(0.02)
                    continue
                return
            time.sleep(0.02)

    thread = threading.Thread(target=remove)
    thread.start()
    return thread


def _slow_context(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN sleep 4\nRUN echo built > /built\n")
    return context


def test_a_build_whose_base_is_removed_midway_is_built_once_more(docker_client, cpu_image, tmp_path, capfd) -> None:
    marker = uuid.uuid4().hex[:12]
    base = _base(docker_client, marker, cpu_image.tag)
    newer = _base(docker_client, marker + "-newer", cpu_image.tag)
    tag = f"gpuci-test-orphan/{marker}:x"
    recipe = recipe_for(ROOT, "cpu", base_image=base)
    remover = _remove_base_mid_build(docker_client, base, replacement=newer)
    try:
        build_in_context(docker_client, _slow_context(tmp_path), tag, recipe, {"gpuci.test": marker})
        remover.join()
        assert "building it once more" in capfd.readouterr().err
        assert docker_client.containers.run(tag, ["cat", "/built"], remove=True).strip() == b"built"
    finally:
        remover.join()
        for ref in (tag, base, newer):
            engine.remove_image(docker_client, ref, force=True)


def test_a_build_whose_base_is_gone_for_good_says_so_and_exits_75(docker_client, cpu_image, tmp_path) -> None:
    marker = uuid.uuid4().hex[:12]
    base = _base(docker_client, marker, cpu_image.tag)
    tag = f"gpuci-test-orphan/{marker}:x"
    recipe = recipe_for(ROOT, "cpu", base_image=base)
    remover = _remove_base_mid_build(docker_client, base, replacement=None)
    try:
        with pytest.raises(ParentImageGone, match="was removed while it built") as failed:
            build_in_context(docker_client, _slow_context(tmp_path), tag, recipe, {"gpuci.test": marker})
        assert failed.value.exit_code == ExitCode.INFRASTRUCTURE
        assert engine.image_id(docker_client, tag) is None
    finally:
        remover.join()
        for ref in (tag, base):
            engine.remove_image(docker_client, ref, force=True)


def test_build_output_is_shown_as_lines_without_the_engine_s_colour_framing() -> None:
    from harness.images.system_layer import BuildLines

    lines = BuildLines()
    # What the engine streams for a RUN step's stderr (uv's lines in a gpuci recipe), and a step's own escape.
    assert lines.feed("\x1b[91mResolved 18 packages in 96ms\n\x1b[0m") == ["Resolved 18 packages in 96ms"]
    assert lines.feed("\x1b[91mone\ntwo\n\x1b[0m") == ["one", "two"]
    assert lines.feed("Step 3/9 : RUN make\n") == ["Step 3/9 : RUN make"]
    assert lines.feed("evil \x1b]0;title\x07 here\n") == ["evil \\x1b]0;title\\x07 here"]  # inert, as before
    # A write the engine read in two parts (under load) comes as two framed messages: one line again.
    assert lines.feed("\x1b[91mE: Unable to locate pack\x1b[0m") == []
    joined = lines.feed("\x1b[91mage gpuci-no-such-package-x\n\x1b[0m")
    assert joined == ["E: Unable to locate package gpuci-no-such-package-x"]
    assert lines.feed("no end") == [] and lines.end() == ["no end"] and lines.end() == []
