"""The project's layer made by a container and a load (real engine): the same inputs give the same layer,
a changed lock a new image, and a failed or interrupted install leaves no container and no folder."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.images.in_image.install_project import START
from harness.untrusted import remove_tree
from tests.conftest import ROOT, harness_cmd, harness_env

MARKER = f"this suite's own tags: {uuid.uuid4().hex}"


def _project(root: Path, requirement: str, setup_py: str | None = None) -> Path:
    """A project with tags of its own (a marker comment in its requirements, which the tag hashes): a twin
    suite builds the same inputs, and its removal of a shared tag failed (409) while this one's container
    used it."""
    shutil.copytree(ROOT / "containers", root / "containers")
    (root / "requirements-test.txt").write_text(f"# {MARKER}\n{requirement}\n")
    install = "editable" if setup_py else "none"
    (root / "pyproject.toml").write_text(
        f'[tool.gpuci]\nrequirements = ["requirements-test.txt"]\ninstall = "{install}"\n'
    )
    if setup_py:
        (root / "setup.py").write_text(setup_py)
    return root


def _layers(client, tag: str) -> list[str]:
    return list(client.images.get(tag).attrs["RootFS"]["Layers"])


def _leftovers(client, root: Path) -> tuple[list[str], list[str]]:
    """This project's install containers (by their mounts from its folder: a twin suite's build on the
    engine is not this test's leftover) and its build folders."""
    rows = client.api.containers(all=True, filters={"label": "gpuci.purpose=project-layer"}) or []
    containers = [
        row["Names"][0] for row in rows if any(str(root) in (m.get("Source") or "") for m in row.get("Mounts") or [])
    ]
    build = root / ".gpuci" / "build"
    return containers, sorted(p.name for p in build.iterdir()) if build.is_dir() else []


def test_the_same_inputs_give_the_same_layer_and_a_changed_lock_a_new_image(docker_client, tmp_path: Path) -> None:
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    root = _project(tmp_path / "p", "markupsafe==3.0.3")
    first = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
    try:
        layers = _layers(docker_client, first.tag)
        labels = docker_client.images.get(first.tag).attrs["Config"]["Labels"]
        assert labels["gpuci.content-hash"] == first.content_hash and "markupsafe==3.0.3" in labels["gpuci.resolved"]
        ran = docker_client.containers.run(first.tag, ["python", "-c", "import markupsafe, pytest; print('ok')"],
                                           remove=True, network_disabled=True)  # fmt: skip
        assert ran.strip() == b"ok"
    finally:
        docker_client.images.remove(first.tag)
    again = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
    try:
        assert again.built and _layers(docker_client, again.tag) == layers  # every layer, the project's too
    finally:
        docker_client.images.remove(again.tag)
    (root / "gpuci.lock").unlink()
    (root / "requirements-test.txt").write_text(f"# {MARKER}\nmarkupsafe==3.0.2\n")
    changed = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
    try:
        assert changed.tag != first.tag and _layers(docker_client, changed.tag)[:-1] == layers[:-1]
        assert _layers(docker_client, changed.tag)[-1] != layers[-1]  # gpuci's layer shared, the project's new
    finally:
        docker_client.images.remove(changed.tag)
    assert _leftovers(docker_client, root) == ([], [])


PLAIN = "from setuptools import setup\nsetup(name='plain', version='1', py_modules=['plain'])\n"
CHECK_PYC = """
import importlib.util, pathlib, markupsafe, plain
cached = pathlib.Path(importlib.util.cache_from_source(markupsafe.__file__))
flags = int.from_bytes(cached.read_bytes()[4:8], 'little')  # PEP 552: bit 0 hash-based, bit 1 checked
print(cached.is_file(), flags, plain.X)
"""


def test_the_pins_bytecode_compiled_beside_the_project_s_build_is_in_the_image(docker_client, tmp_path: Path) -> None:
    """The pins' bytecode is compiled while the project's own build runs (one shell, a background job): the
    image still has it, hash-checked, and the compile's end is waited for before the layer is written."""
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    root = _project(tmp_path / "p", "markupsafe==3.0.3", PLAIN)
    (root / "plain.py").write_text("X = 'plain'\n")
    built = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
    try:
        ran = docker_client.containers.run(built.tag, ["python", "-c", CHECK_PYC], remove=True, network_disabled=True,
                                           volumes={str(root): {"bind": "/workspace", "mode": "ro"}})  # fmt: skip
        assert ran.split() == [b"True", b"3", b"plain"]
    finally:
        docker_client.images.remove(built.tag)
    assert _leftovers(docker_client, root) == ([], [])


FAILING = "import os\nif os.path.isdir('/opt/gpuci/venv'):\n    raise SystemExit('gpuci-test: the install fails')\n"
FAILING += "from setuptools import setup\nsetup(name='fails', version='1', py_modules=[])\n"


def test_a_failed_install_is_the_project_s_error_and_leaves_nothing(docker_client, tmp_path: Path) -> None:
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    root = _project(tmp_path / "p", "markupsafe==3.0.3", FAILING)
    with pytest.raises(UsageError, match="the project's build failed"):
        ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
    assert _leftovers(docker_client, root) == ([], [])


DEEP = """import os
if os.path.isdir('/opt/gpuci/venv'):
    fd = os.open('/tmp', os.O_RDONLY)  # the container's /tmp is a host folder of the build's
    for _ in range(3000):
        os.mkdir('d', dir_fd=fd)
        child = os.open('d', os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    raise SystemExit('gpuci-test: a deep tree left, then the install fails')
from setuptools import setup
setup(name='deep', version='1', py_modules=[])
"""


def test_a_tree_the_install_nested_3000_deep_is_removed_and_its_error_kept(docker_client, tmp_path: Path) -> None:
    """The project's setup.py left 3,000 nested folders in its /tmp, a host folder of the build: removing
    the build folder with shutil.rmtree raised RecursionError, which replaced the project's own error with a
    traceback and left the folder behind."""
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    root = _project(tmp_path / "p", "markupsafe==3.0.3", DEEP)
    try:
        with pytest.raises(UsageError, match="the project's build failed"):
            ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
        assert _leftovers(docker_client, root) == ([], [])
    finally:
        remove_tree(root)  # pytest's own clean-up of old temporary folders recurses: never leave it one


def test_gpucis_venv_made_a_link_by_the_recipe_is_never_mounted(docker_client, tmp_path: Path) -> None:
    """The project's Dockerfile puts a `python3` first on the PATH; in gpuci's own layer container it made
    /opt/gpuci/venv (a host folder of the stage) a link to a host folder. gpuci kept the venv as a link,
    copied it out to the project's stage and bind-mounted it: Docker followed the link, and the project's
    install wrote into that host folder as gpuci's user (a link to `/` is the host)."""
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    victim = tmp_path / "host-folder"
    victim.mkdir()
    root = _project(tmp_path / "p", "markupsafe==3.0.3")
    dockerfile = root / "containers" / "cpu" / "Dockerfile"
    wrapper = (
        "RUN printf '#!/bin/sh\\nif [ -d /opt/gpuci/build ] && [ ! -e /opt/gpuci/venv ]; then "
        f"ln -s {victim} /opt/gpuci/venv; exit 0; fi\\n"
        'echo planted > /opt/gpuci/venv/PLANTED 2>/dev/null\\nexec /usr/bin/python3 "$@"\\n\' '
        "> /usr/local/sbin/python3 && chmod 755 /usr/local/sbin/python3\n"
    )
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace("COPY gpuci/ /opt/gpuci/", wrapper + "COPY gpuci/ /opt/gpuci/", 1))
    with pytest.raises(UsageError, match="link"):
        ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
    assert list(victim.iterdir()) == []
    assert _leftovers(docker_client, root) == ([], [])


SPARSE = """import os
if os.path.isdir('/opt/gpuci/venv'):
    for i in range(4):  # 256 MiB of layer, no disk: each file at the sparse bound, none over it
        with open(f'/opt/gpuci/outputs/zeros-{i}.so', 'wb') as out:
            out.truncate(64 * 2**20)
from setuptools import setup
setup(name='sparse', version='1', py_modules=[])
"""


def test_many_sparse_files_the_install_leaves_are_refused_before_the_engine_writes_them(
    docker_client, tmp_path: Path
) -> None:
    """Hostile review 2026-12-04 (second): the sparse bound was a file's (over 64 MiB); a setup.py that left many files
    of 64 MiB each, made by truncate, had the host stream their zeros into the engine's load (a thousand of
    them: 62.5 GiB, twice, from 28 KiB of the container's disk)."""
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    root = _project(tmp_path / "p", "markupsafe==3.0.3", SPARSE)
    made = None
    try:
        with pytest.raises(UsageError, match="sparse"):
            made = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
        assert _leftovers(docker_client, root) == ([], [])
    finally:
        if made is not None:  # the zeros the engine took: this test's own image, removed
            docker_client.images.remove(made.tag)


def test_zeros_a_recipe_puts_in_gpucis_venv_are_never_copied_to_the_host(docker_client, tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): a recipe with a step after gpuci's two (its layer is then the builder's) ran
    `truncate -s 300M /opt/gpuci/venv/zeros`: the project's layer copied gpuci's venv out of that image
    onto the host, 300 MB of zeros written into the build folder and again into the user's cache, where
    the archive stays (60G: the host's disk, from a file that takes none)."""
    from harness.images.build import ensure
    from harness.images.installer import cache_dir
    from harness.images.recipe import recipe_for

    mark = f"gpuci-test-zeros-{uuid.uuid4().hex}"
    root = _project(tmp_path / "p", "markupsafe==3.0.3", "from setuptools import setup\nsetup(name='z', version='1')\n")
    dockerfile = root / "containers" / "cpu" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN truncate -s 300M /opt/gpuci/venv/zeros # {mark}\n")
    cached = cache_dir("layers")
    before = {p.name for p in cached.iterdir()}
    made = None
    try:
        with pytest.raises(UsageError, match="zeros"):
            made = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
        assert {p.name for p in cached.iterdir()} == before
        assert _leftovers(docker_client, root) == ([], [])
    finally:
        if made is not None:
            docker_client.images.remove(made.tag)
        for image in docker_client.images.list(name="gpuci/cpu-recipe"):  # the recipe's image: this test's own
            if any(mark in (row.get("CreatedBy") or "") for row in image.history()):
                docker_client.images.remove(image.id, force=True)


def test_a_device_node_a_recipe_puts_in_gpucis_venv_is_never_made_on_the_host(docker_client, tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): a recipe step after gpuci's two ran, as the builder's root, `mknod
    /opt/gpuci/venv/disk b 8 0; chmod 666`: the host's `tar -xf` of that venv (gpuci as root) made a
    world-writable node of the host's first disk in the build folder (a non-root gpuci's tar failed on it:
    exit 75, retried, for the recipe's doing)."""
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    mark = f"gpuci-test-device-{uuid.uuid4().hex}"
    root = _project(tmp_path / "p", "markupsafe==3.0.3", "from setuptools import setup\nsetup(name='d', version='1')\n")
    dockerfile = root / "containers" / "cpu" / "Dockerfile"
    step = f"RUN mknod /opt/gpuci/venv/disk b 8 0 && chmod 666 /opt/gpuci/venv/disk # {mark}\n"
    dockerfile.write_text(dockerfile.read_text() + step)
    made = None
    try:
        with pytest.raises(UsageError, match="device"):
            made = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
        assert _leftovers(docker_client, root) == ([], [])
    finally:
        if made is not None:
            docker_client.images.remove(made.tag)
        for image in docker_client.images.list(name="gpuci/cpu-recipe"):  # the recipe's image: this test's own
            if any(mark in (row.get("CreatedBy") or "") for row in image.history()):
                docker_client.images.remove(image.id, force=True)


SLOW = "import os, time\nif os.path.isdir('/opt/gpuci/venv'):\n    time.sleep(90)\n"
SLOW += "from setuptools import setup\nsetup(name='slow', version='1', py_modules=[])\n"


def test_ctrl_c_during_the_install_leaves_no_container_and_no_folder(docker_client, tmp_path: Path) -> None:
    root = _project(tmp_path / "p", "markupsafe==3.0.3", SLOW)
    command = harness_cmd("image", "ensure", "--platform", "cpu", "--base-image", "local", "--root", str(root))
    proc = subprocess.Popen(command, cwd=ROOT, env=harness_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        seen.append(line)
        if START in line or time.monotonic() > deadline:  # the project's setup.py runs now, for 90 s
            break
    assert any(START in line for line in seen), "".join(seen[-30:])
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0, rest[-2000:]
    assert _leftovers(docker_client, root) == ([], []), rest[-2000:]


def test_an_engine_on_another_host_gets_the_builder_s_steps(docker_client, tmp_path: Path, monkeypatch) -> None:
    """A bind mount would name the engine's folders, not ours: the project's layer is a builder step there."""
    from harness.images import engine
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    monkeypatch.setattr(engine, "is_local", lambda client: False)
    root = _project(tmp_path / "p", "markupsafe==3.0.3")
    (root / "containers" / "cpu" / "Dockerfile").write_text(
        (root / "containers" / "cpu" / "Dockerfile").read_text() + "# built elsewhere\n"
    )  # another recipe than the other tests': its own tag
    built = ensure(docker_client, recipe_for(root, "cpu", base_image="local"), root)
    try:
        steps = [row["CreatedBy"] for row in docker_client.api.history(built.tag)]
        assert any("install_wheels.py /opt/gpuci/project-deps" in step for step in steps)
        ran = docker_client.containers.run(built.tag, ["python", "-c", "import markupsafe; print('ok')"],
                                           remove=True, network_disabled=True)  # fmt: skip
        assert ran.strip() == b"ok"
    finally:
        docker_client.images.remove(built.tag)
