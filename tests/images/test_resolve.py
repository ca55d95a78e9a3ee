"""The project's requirements, unpinned and compiled, resolved for the image's own Python."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import docker

from harness.images.airgap import BaseRecipe
from harness.images.resolve import ask_image
from tests.conftest import ROOT


def test_the_base_image_says_which_python_it_runs(docker_client: docker.DockerClient, cpu_image) -> None:
    target = ask_image(docker_client, BaseRecipe().tag)
    assert target.version == "3.11" and target.machine in ("x86_64", "aarch64")  # Debian bookworm's
    assert target.glibc and target.glibc.startswith("2.")
    assert f"manylinux_2_17_{target.machine}" in target.pip_args()


def project(tmp_path: Path, requirements: str) -> Path:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "containers", root / "containers")
    shutil.copytree(ROOT / "harness", root / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    (root / ".buildkite" / "test_areas" / "deps.yaml").write_text(
        "platforms: [cpu]\nsteps:\n  - label: deps\n    num_gpus: 0\n"
        '    commands: ["python3 -c \\"import markupsafe, yaml; print(\'compiled ok\', yaml.__version__)\\""]\n'
    )
    (root / "pyproject.toml").write_text('[tool.gpuci]\nrequirements = ["requirements-test.txt"]\n')
    (root / "requirements-test.txt").write_text(requirements)
    return root


def test_unpinned_compiled_requirements_build_for_the_images_python(
    run_harness, cpu_image, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    root = project(
        tmp_path, "# as people write them: unpinned, compiled, dependencies left out\nmarkupsafe\npyyaml>=6\n"
    )
    done = run_harness("run", "--platform", "cpu", "--area", "deps", "--root", str(root), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "compiled ok" in done.stdout
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    resolved = docker_client.images.get(report["image"]["id"]).labels["gpuci.resolved"].split(",")
    names = {pin.split("==")[0] for pin in resolved}
    assert {"markupsafe", "pyyaml"} <= names and all("==" in pin for pin in resolved)  # what was installed


def test_a_requirement_that_exists_nowhere_is_exit_2_naming_file_and_line(
    run_harness, cpu_image, tmp_path: Path
) -> None:
    root = project(tmp_path, "markupsafe\nno-such-package-gpuci-test==1.0\n")
    done = run_harness("run", "--platform", "cpu", "--area", "deps", "--root", str(root), timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "requirements-test.txt:2" in done.stderr and "no-such-package-gpuci-test" in done.stderr
    assert "the package index does not have; check its spelling" in done.stderr
    assert "ships wheels" not in done.stderr  # a pin cannot mend a name that does not exist
    assert "Traceback" not in done.stderr


def test_a_requirement_that_conflicts_with_gpucis_own_pins_is_exit_2_before_any_build(
    run_harness, cpu_image, tmp_path: Path
) -> None:
    """Both sets go into one image: a project asking for another pytest than gpuci's plugin runs
    with is told so on the host, not by a failed build retried as infrastructure."""
    root = project(tmp_path, "markupsafe\npytest==8.3.5\n")
    done = run_harness("run", "--platform", "cpu", "--area", "deps", "--root", str(root), timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "conflict" in done.stderr and "containers/requirements.txt" in done.stderr
    assert "requirements-test.txt" in done.stderr and "Traceback" not in done.stderr
    # Both lines named, as a missing requirement's is (markupsafe's requirements/tests.txt pins pytest
    # in a pip-compile file: the file alone left the user to search it).
    pinned = next(n for n, line in enumerate((ROOT / "containers/requirements.txt").read_text().splitlines(), 1)
                  if line.startswith("pytest=="))  # fmt: skip
    assert "requirements-test.txt:2 (pytest)" in done.stderr, done.stderr[-3000:]
    assert f"containers/requirements.txt:{pinned} (pytest)" in done.stderr


def test_a_dependency_group_is_resolved_and_its_missing_entry_named_in_pyproject(
    run_harness, cpu_image, tmp_path: Path
) -> None:
    root = project(tmp_path, "markupsafe\n")
    (root / "pyproject.toml").write_text(
        '[dependency-groups]\ntest = [\n  "pyyaml>=6",\n  "no-such-package-gpuci-group==1.0",\n]\n'
        '[tool.gpuci]\nrequirements = ["requirements-test.txt"]\ndependency_groups = ["test"]\n'
    )
    done = run_harness("run", "--platform", "cpu", "--area", "deps", "--root", str(root), timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "pyproject.toml:4" in done.stderr and "no-such-package-gpuci-group" in done.stderr


def test_a_requirement_line_that_is_a_pip_option_or_a_path_is_refused(run_harness, cpu_image, tmp_path: Path) -> None:
    """The file is the pull request's and pip runs on the host: `-r /etc/shadow` would print a host line."""
    for line in ("-r /etc/shadow", "--index-url https://evil.example/simple", "lib @ file:///etc", "./local-pkg"):
        root = project(tmp_path / str(abs(hash(line))), f"markupsafe\n{line}\n")
        done = run_harness("run", "--platform", "cpu", "--area", "deps", "--root", str(root), timeout=600)
        assert done.returncode == 2, (line, done.stderr[-1500:])
        assert "requirements-test.txt:2" in done.stderr and "pip option or a local or URL reference" in done.stderr
        assert "root:" not in done.stderr


def test_an_images_answer_about_its_python_is_plain_words_or_refused() -> None:
    import pytest

    from harness.errors import UsageError
    from harness.images.resolve import _checked_target

    assert _checked_target("img", {"version": "3.11", "machine": "x86_64", "glibc": "2.36"}).version == "3.11"
    for hostile in (
        {"version": "3.11", "machine": "x/../../../lnk", "glibc": None},
        {"version": "../../lnk", "machine": "x86_64", "glibc": None},
        {"version": "3.11", "machine": "x86_64", "glibc": "2.36; rm"},
        ["not", "a", "dict"],
    ):
        with pytest.raises(UsageError, match="not a real Python"):
            _checked_target("img", hostile)


def test_a_requirement_pip_would_read_otherwise_than_gpuci_checks_it_is_refused(
    run_harness, cpu_image, tmp_path: Path
) -> None:
    """pip decodes a requirement file by a PEP 263 line among its first two (UTF-7 turns `+AC0-r` into
    `-r`), splits a pyproject.toml entry at its newlines and expands `${VAR}` from the host's
    environment: each would read a host file, or a host variable, into pip's words on the host."""
    host_file = tmp_path / "host-only.txt"
    host_file.write_text("hostile-host-line-42\n")
    attacks = {
        "utf-7": ("requirements-test.txt:1", f"# -*- coding: utf-7 -*-\n+AC0-r {host_file}\n", ""),
        "variable": ("requirements-test.txt:2", "markupsafe\n${GPUCI_HOSTILE_CANARY}\n", ""),
        "newline": ("pyproject.toml", "markupsafe\n", f'"markupsafe\\n-r {host_file}"'),
    }
    for name, (where, requirements, group) in attacks.items():
        root = project(tmp_path / name, requirements)
        if group:
            (root / "pyproject.toml").write_text(
                f'[dependency-groups]\ntest = [{group}]\n\n[tool.gpuci]\ndependency_groups = ["test"]\n'
            )
        done = run_harness(
            "run", "--platform", "cpu", "--area", "deps", "--root", str(root), timeout=600,
            GPUCI_HOSTILE_CANARY="hostile-host-value-43",
        )  # fmt: skip
        assert done.returncode == 2, (name, done.stderr[-1500:])
        assert where in done.stderr and "pip" in done.stderr, (name, done.stderr[-1500:])
        assert "hostile-host-line-42" not in done.stderr and "hostile-host-value-43" not in done.stderr, name


def test_the_checkouts_image_requirements_never_hand_pip_an_option(run_harness, cpu_image, tmp_path: Path) -> None:
    """containers/requirements.txt is the pull request's too, and pip reads it on the host (to fill the
    wheelhouse, and as the constraints of every resolution): an option there would read a host file."""
    host_file = tmp_path / "host-only.txt"
    host_file.write_text("hostile-host-line-44\n")
    root = project(tmp_path / "constraints", "markupsafe\n")
    pins = root / "containers" / "requirements.txt"
    pins.write_text(pins.read_text() + f"-r {host_file}\n")
    done = run_harness("run", "--platform", "cpu", "--area", "deps", "--root", str(root), timeout=600)
    assert done.returncode == 2, done.stderr[-1500:]
    lines = len(pins.read_text().splitlines())
    assert f"requirements.txt:{lines}" in done.stderr and "pip option" in done.stderr, done.stderr[-1500:]
    assert "hostile-host-line-44" not in done.stderr
