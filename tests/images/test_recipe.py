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
