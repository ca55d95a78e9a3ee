"""The build context's layers: gpuci's own layer is shared by projects on one base; labels in one step."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.images.context import before_own_steps, is_legacy, label_line, pins_in, project_steps, wheels_for
from tests.conftest import ROOT


def test_labels_go_in_one_step_and_are_quoted_for_the_dockerfile() -> None:
    line = label_line({"b": 'say "hi" $HOME \\ ok', "a": "x\ny"})
    assert line.count("LABEL") == 1 and line.startswith("\nLABEL a=")
    assert '"say \\"hi\\" \\$HOME \\\\ ok"' in line and "\n" not in line.strip()


def test_a_recipe_that_copies_one_wheelhouse_is_built_the_old_way() -> None:
    assert is_legacy(b"COPY requirements.txt /x/\nCOPY wheelhouse/ /opt/gpuci/build/wheelhouse/\n")
    assert not is_legacy((ROOT / "containers" / "cpu" / "Dockerfile").read_bytes())


def test_wheels_are_picked_by_normalized_name_and_exact_version(tmp_path: Path) -> None:
    for name in ("PyYAML-6.0.3-cp311-cp311-manylinux_2_17_x86_64.whl", "pyyaml-6.0.2-cp311-cp311-any.whl",
                 "markupsafe-3.0.3-cp311-cp311-manylinux_2_17_x86_64.whl", "uv-0.13.9-py3-none-any.whl"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    assert wheels_for(tmp_path, ["pyyaml==6.0.3"]) == {"PyYAML-6.0.3-cp311-cp311-manylinux_2_17_x86_64.whl"}
    assert pins_in("# gpuci\npytest==8.4.2\nnumpy>=2\nPy_Yaml==6.0.3  # c\n") == ["pytest==8.4.2", "Py_Yaml==6.0.3"]


def test_the_project_layer_is_one_copy_then_labels_then_one_run() -> None:
    steps = project_steps({"gpuci.content-hash": "abc"}, None, True).strip().splitlines()
    kept = [line.split()[0] for line in steps if not line.startswith("#")]
    assert kept == ["COPY", "LABEL", "RUN"]
    assert project_steps({"k": "v"}, None, False).strip().startswith("LABEL")  # nothing to install


def _project(root: Path, requirement: str) -> Path:
    shutil.copytree(ROOT / "containers", root / "containers")
    (root / "requirements-test.txt").write_text(f"{requirement}\n")
    (root / "pyproject.toml").write_text('[tool.gpuci]\nrequirements = ["requirements-test.txt"]\ninstall = "none"\n')
    return root


def test_gpuci_init_s_recipe_has_gpuci_s_own_steps_last_and_others_do_not() -> None:
    recipe = (ROOT / "containers" / "cpu" / "Dockerfile").read_bytes()
    head = before_own_steps(recipe)
    assert (
        head is not None
        and b"COPY gpuci/" not in head
        and head.strip().endswith(b"every project on this base, so the engine's cache shares it.")
    )
    assert before_own_steps(recipe + b"RUN echo mine\n") is None  # a step of the user's after them
    assert before_own_steps(recipe.replace(b"ARG GPUCI_INSTALLER=auto", b"RUN apt-get install -y x \\")) is None


def test_two_projects_on_one_base_share_the_base_and_gpucis_layer(
    docker_client, cpu_image, tmp_path: Path, capfd
) -> None:
    """Real builds: the second project's image has every layer of the first but the project's own (by the
    engine's layer ids), and gpuci's layer was not made again."""
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    first = _project(tmp_path / "first", "markupsafe")
    second = _project(tmp_path / "second", "pyyaml")
    built = ensure(docker_client, recipe_for(first, "cpu", base_image="local"), first)
    capfd.readouterr()
    again = ensure(docker_client, recipe_for(second, "cpu", base_image="local"), second)
    try:
        assert built.built and again.built and built.id != again.id
        assert "gpuci's layer gpuci/cpu-recipe:" in capfd.readouterr().err  # found, not made
        ours, theirs = (docker_client.images.get(i).attrs["RootFS"]["Layers"] for i in (built.id, again.id))
        base = docker_client.images.get(recipe_for(first, "cpu", base_image="local").build_base).attrs["RootFS"][
            "Layers"
        ]
        assert ours[: len(base)] == base and len(ours) == len(base) + 2  # the base, gpuci's layer, the project's
        assert ours[:-1] == theirs[:-1] and ours[-1] != theirs[-1]
    finally:
        for image in (again.tag, built.tag):
            docker_client.images.remove(image)
