"""The system layer: Debian packages on a base, one cached image per set; a wrong name is the user's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import ExitCode, ImageBuildError, UsageError
from harness.images.airgap import bootstrap_base
from harness.images.system_layer import SystemLayer, _fail, ensure_layer


def test_the_tag_is_the_base_and_the_set_and_the_recipe_installs_only_those() -> None:
    layer = SystemLayer("gpuci/base:bookworm-x", ("gcc", "python3-dev"))
    assert layer.tag == SystemLayer("gpuci/base:bookworm-x", ("gcc", "python3-dev"), why="other words").tag
    assert layer.tag != SystemLayer("gpuci/base:bookworm-y", ("gcc", "python3-dev")).tag
    assert layer.tag.startswith("gpuci/system:")
    text = layer.dockerfile()
    assert text.startswith("FROM gpuci/base:bookworm-x\n") and "PKGS=' gcc python3-dev '" in text
    assert "--no-install-recommends" in text and "rm -rf /var/lib/apt/lists" in text


def test_apt_s_words_say_whose_fault_it_is(tmp_path: Path) -> None:
    layer = SystemLayer("gpuci/base:bookworm-x", ("libnosuch-dev",))
    with pytest.raises(UsageError) as err:
        _fail(
            layer,
            ["Reading package lists...", "E: Unable to locate package libnosuch-dev"],
            tmp_path / "pyproject.toml",
        )
    assert "'libnosuch-dev'" in str(err.value) and "system_packages" in str(err.value)
    with pytest.raises(Exception) as err:
        _fail(layer, ["W: Failed to fetch http://deb.debian.org/…  Temporary failure resolving"], tmp_path)
    assert err.value.exit_code == ExitCode.INFRASTRUCTURE  # type: ignore[attr-defined]


def test_a_package_apt_does_not_know_is_exit_2_naming_the_setting(
    docker_client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = bootstrap_base(docker_client)
    layer = SystemLayer(base, ("gpuci-no-such-package-x",), "a test")
    with pytest.raises(UsageError) as err:
        ensure_layer(docker_client, layer, tmp_path / "pyproject.toml")
    assert f"{tmp_path}/pyproject.toml" in str(err.value) and "'gpuci-no-such-package-x'" in str(err.value)
    # apt's stderr, as the console shows it: its lines, without the engine's red framing printed as text
    shown = capsys.readouterr().err
    assert "\n  E: Unable to locate package gpuci-no-such-package-x\n" in shown and "x1b[91m" not in shown
    assert "building the system layer" in shown and "built the system layer" not in shown  # its time: built only
    with pytest.raises(Exception, match="No such image"):
        docker_client.images.get(layer.tag)


def test_the_layer_builds_on_the_commands_network_and_says_whose_it_is(docker_client, tmp_path: Path) -> None:
    """The layer's build runs with the resolved `network` (harness.images.recipe.build_network): with
    `none`, apt cannot reach the mirror. The project's `none` is its to fix (exit 2, at its line); the
    host's is the engine's (75), and nothing is tagged either way."""
    base = bootstrap_base(docker_client)
    origin = f"{tmp_path}/pyproject.toml:7"
    layer = SystemLayer(base, ("libsqlite3-dev",), "a test", network="none", network_origin=origin)
    with pytest.raises(UsageError) as err:
        ensure_layer(docker_client, layer, tmp_path / "pyproject.toml")
    assert f"{origin}: [tool.gpuci] network is 'none'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ImageBuildError) as failed:
        ensure_layer(docker_client, replace(layer, network_origin=None), tmp_path / "pyproject.toml")
    assert failed.value.exit_code == ExitCode.INFRASTRUCTURE and "network 'none', GPUCI_NETWORK" in str(failed.value)
    with pytest.raises(Exception, match="No such image"):
        docker_client.images.get(layer.tag)
