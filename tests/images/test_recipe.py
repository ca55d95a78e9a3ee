"""The recipe's build network: the command's `network` setting, one precedence, bounded by the policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.declare.config import load_config
from harness.errors import UsageError
from harness.images.recipe import recipe_for
from tests.conftest import ROOT
from tests.images.test_build import copy_recipes


def project(tmp_path: Path, gpuci: str) -> Path:
    root = copy_recipes(tmp_path)
    (root / "pyproject.toml").write_text(f"[project]\nname = 'p'\nversion = '1'\n\n[tool.gpuci]\n{gpuci}")
    return root


def test_the_build_network_is_the_resolved_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUCI_NETWORK", raising=False)
    monkeypatch.delenv("GPUCI_POLICY", raising=False)
    root = project(tmp_path, 'network = "none"\nsystem_packages = ["libsqlite3-dev"]\n')
    recipe = recipe_for(root, "cpu", config=load_config(root, environ={}))
    assert recipe.network == "none" and recipe.system_layer is not None
    assert recipe.system_layer.network == "none" and recipe.system_layer.network_origin == f"{root}/pyproject.toml:6"
    # The host's variable is over the project's, and a host value has no project origin.
    by_host = recipe_for(root, "cpu", config=load_config(root, environ={"GPUCI_NETWORK": "bridge"}))
    assert by_host.network == "bridge" and by_host.system_layer.network_origin is None  # type: ignore[union-attr]
    assert by_host.tag == recipe.tag  # how it is built is not what it holds
    # No command (a bench or a test): the same precedence, read from the environment then.
    monkeypatch.setenv("GPUCI_NETWORK", "bridge")
    assert recipe_for(root, "cpu").network == "bridge"
    monkeypatch.delenv("GPUCI_NETWORK")
    assert recipe_for(ROOT, "cpu").network is None


@pytest.mark.parametrize("network", ["host", "container:gpuci-registry", "bridge"])
def test_a_pull_request_cannot_widen_the_build_network(tmp_path: Path, monkeypatch, network: str) -> None:
    """A hostile [tool.gpuci] network reaches no build: refused with the line, even where the caller
    read the settings without the policy (recipe_for with no config: the safe defaults bound it)."""
    monkeypatch.delenv("GPUCI_NETWORK", raising=False)
    monkeypatch.delenv("GPUCI_POLICY", raising=False)
    root = project(tmp_path, f'network = "{network}"\n')
    for call in (lambda: recipe_for(root, "cpu"), lambda: recipe_for(root, "cpu", config=load_config(root))):
        with pytest.raises(UsageError) as err:
            call()
        assert f"pyproject.toml:6: [tool.gpuci] network: asks for the network {network!r}" in str(err.value)
        assert "networks" in str(err.value) and "\n" not in str(err.value)


def test_no_image_module_reads_the_network_from_the_environment() -> None:
    around = re.compile(r"(environ|getenv)\W[^\n]*NETWORK")
    for path in (ROOT / "harness" / "images").rglob("*.py"):
        assert not around.search(path.read_text()), f"{path} reads the network around the settings"


def test_the_projects_ca_bundle_is_the_checkouts_at_every_recipe(tmp_path: Path, monkeypatch) -> None:
    """The request checks [tool.gpuci] ca_bundle once, before the first step; each step's recipe read it
    again through links. A step made ca.pem a link to a host file, and the next step's image held that
    file's bytes as its extra CA bundle (/opt/gpuci/build/extra-ca.crt), where its tests read it."""
    monkeypatch.delenv("GPUCI_POLICY", raising=False)
    monkeypatch.delenv("GPUCI_CA_BUNDLE", raising=False)
    root = project(tmp_path / "checkout", 'ca_bundle = "ca.pem"\n')
    (root / "ca.pem").write_text("# no certificates\n")
    config = load_config(root, environ={})
    assert recipe_for(root, "cpu", ca_bundle=root / "ca.pem", config=config).ca_bundle == root / "ca.pem"
    host_file = tmp_path / "host-secret"
    host_file.write_text("the agent's token\n")
    (root / "ca.pem").unlink()
    (root / "ca.pem").symlink_to(host_file)  # what a step's container can do: the checkout is writable there
    with pytest.raises(UsageError, match="ca_bundle"):
        recipe_for(root, "cpu", ca_bundle=root / "ca.pem", config=config)
    # The host's own bundle (a flag or GPUCI_CA_BUNDLE) is a host path, wherever it lies.
    by_host = load_config(root, environ={"GPUCI_CA_BUNDLE": str(host_file)})
    assert recipe_for(root, "cpu", ca_bundle=host_file, config=by_host).ca_bundle == host_file


def test_a_build_folder_s_layer_times_are_in_the_tag_of_projects_that_have_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image written before its meson-python build folder kept the build's times rebuilt every extension
    at every run's first import: a project with such a folder gets a new tag once, no other project does."""
    import harness.images.recipe as recipe_module

    meson = copy_recipes(tmp_path / "meson")
    (meson / "pyproject.toml").write_text(
        "[build-system]\nrequires = ['meson-python']\nbuild-backend = 'mesonpy'\n\n"
        "[project]\nname = 'm'\nversion = '1'\n"
    )
    plain = project(tmp_path / "plain", "")
    before = {root: recipe_for(root, "cpu").tag for root in (meson, plain)}
    monkeypatch.setattr(recipe_module, "BUILD_DIR_TIMES", "an older way")
    assert recipe_for(meson, "cpu").tag != before[meson] and recipe_for(plain, "cpu").tag == before[plain]
