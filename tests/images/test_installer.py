"""pip for the wheelhouse: the Python gpuci runs on must have it, and where it has none gpuci says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_a_python_without_pip_is_told_what_to_do_not_that_a_requirement_has_no_wheel(tmp_path: Path) -> None:
    """A uv-made environment has no pip; gpuci used to run `python -m pip download` there and report
    pip's 'No module named pip' as a requirement with no wheel (exit 2, misleading)."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    code = (
        "import sys\n"
        "from harness.errors import GpuciError\n"
        "from harness.images.installer import pip_command\n"
        "try:\n    pip_command()\nexcept GpuciError as exc:\n    print(int(exc.exit_code), exc)\n"
    )
    done = subprocess.run(
        [str(bare / "bin" / "python"), "-c", code],
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 ") and "has none" in done.stdout and "-m ensurepip" in done.stdout
    assert "no wheel" not in done.stdout


def test_pip_is_one_of_gpucis_dependencies_so_an_environment_made_by_uv_has_it() -> None:
    import importlib.metadata

    from packaging.requirements import Requirement

    names = {Requirement(r).name for r in importlib.metadata.requires("gpuci-harness") or []}
    assert "pip" in names and "nox" in names


def test_the_python_gpuci_runs_on_here_has_pip() -> None:
    from harness.images.installer import pip_command

    assert pip_command() == ["-m", "pip"]  # run by harness.host_python with gpuci's interpreter, isolated


def test_a_cache_folder_that_cannot_be_made_is_a_usage_error_saying_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache path under a file (or one the user cannot write) was an OSError traceback out of any run."""
    from harness.errors import UsageError
    from harness.images.installer import cache_dir

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GPUCI_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(UsageError, match="GPUCI_CACHE_DIR") as raised:
        cache_dir("wheels")
    assert str(blocker / "cache") in str(raised.value)
