"""A failed image build is the project's (exit 2, its first error and file) or the engine's (75)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.errors import ExitCode
from harness.images.build_errors import project_failure
from harness.images.in_image.install_project import FAILED, START
from harness.images.project_install import ProjectInstall
from tests.images.backend_projects import backend_project
from tests.images.test_toolchain import _c_project

SETUPTOOLS = ProjectInstall("/workspace", "x", (), "setuptools.build_meta")
PIP_TAIL = ["  error: subprocess-exited-with-error", "  × Building editable for fastmath (pyproject.toml) did not run"]


def test_a_compiler_error_names_the_checkout_s_file_and_line(tmp_path: Path) -> None:
    lines = [
        "Step 9/9 : RUN set -e; …",
        START,
        "      fastmath/_speed.c: In function 'add':",
        "      fastmath/_speed.c:4:5: error: unknown type name 'lon'",
        "      fastmath/_speed.c:9:1: error: expected ';'",
        *PIP_TAIL,
        f"{FAILED} (exit 1)",
    ]
    error = project_failure(lines, tmp_path, SETUPTOOLS)
    assert error is not None and error.exit_code == ExitCode.USAGE
    assert str(error).startswith(f"{tmp_path}/fastmath/_speed.c:4: the project's build failed")
    assert "unknown type name 'lon'" in str(error) and "expected ';'" not in str(error)


def test_a_backend_exception_names_the_metadata_file(tmp_path: Path) -> None:
    lines = [START, "  Traceback (most recent call last):", '    File "setup.py", line 3', *PIP_TAIL,
             "  ModuleNotFoundError: No module named 'numpy'", f"{FAILED} (exit 1)"]  # fmt: skip
    (tmp_path / "setup.py").write_text("")
    error = project_failure(lines, tmp_path, SETUPTOOLS)
    assert error is not None and str(error).startswith(f"{tmp_path}/setup.py: ")
    assert "ModuleNotFoundError: No module named 'numpy'" in str(error)
    cmake = [START, "  CMake Error at /workspace/CMakeLists.txt:7 (add_library):", f"{FAILED} (exit 1)"]
    assert str(project_failure(cmake, tmp_path, SETUPTOOLS)).startswith(f"{tmp_path}/CMakeLists.txt:7: ")


def test_a_source_git_ignores_is_named_with_the_missing_module(tmp_path: Path) -> None:
    """Levenshtein's sdist ships its Cython output (`levenshtein_cpp.cxx`) and its .gitignore lists
    `*.cxx`: the image's copy of a `git init`-ed sdist lacks it, CMake's rule runs Cython, which the
    build does not require. The message says both, not uv's "Failed to build"."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.cxx\nbuild/\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "fast.cxx").write_text("// made by Cython\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "x.o").write_text("")
    lines = [START, "  error: Failed to build `fast @ file:///workspace`", "  [1/4] Generating fast.cxx",
             "  FAILED: [code=1] src/fast.cxx /opt/gpuci/skbuild-build/src/fast.cxx",
             "  cd /opt/gpuci/skbuild-build/src && python -m cython --cplus /workspace/src/fast.pyx",
             "  /opt/gpuci/venv/bin/python: No module named cython", f"{FAILED} (exit 1)"]  # fmt: skip
    error = str(project_failure(lines, tmp_path, SETUPTOOLS))
    assert error.startswith(f"{tmp_path}/pyproject.toml: the project's build failed in its image: ")
    assert "No module named cython" in error and "Failed to build" not in error
    assert "The build names src/fast.cxx, in the checkout but ignored by git" in error and "x.o" not in error
    (tmp_path / "src" / "fast.cxx").unlink()  # not in the checkout: nothing to say about it
    assert "ignored by git" not in str(project_failure(lines, tmp_path, SETUPTOOLS))


def test_failures_outside_the_project_s_step_or_of_the_disk_stay_infrastructure(tmp_path: Path) -> None:
    assert project_failure(["Step 3/9 : RUN …", "uv: network unreachable"], tmp_path, SETUPTOOLS) is None
    full = [START, "  OSError: [Errno 28] No space left on device", f"{FAILED} (exit 1)"]
    assert project_failure(full, tmp_path, SETUPTOOLS) is None
    assert project_failure([START, f"{FAILED} (exit 1)"], tmp_path, None) is None  # no project install


def test_a_project_that_does_not_compile_exits_2_naming_its_file(run_harness, tmp_path: Path) -> None:
    root = _c_project(tmp_path / "fastmath")
    source = root / "fastmath" / "_speed.c"
    source.write_text(source.read_text().replace("    long a, b;", "    lon a, b;"))
    done = run_harness("run", "--platform", "cpu", "--area", "fast", "--root", str(root), timeout=1500)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-4000:]
    assert f"{source}:4: the project's build failed" in done.stderr and "lon" in done.stderr, done.stderr[-3000:]
    report = root / ".gpuci" / "runs" / "latest" / "report.json"
    assert not report.exists() or json.loads(report.read_text()).get("exit_code") in (2, None)


def test_meson_s_paths_from_its_build_folder_name_the_checkout_s_file(tmp_path: Path) -> None:
    meson = ProjectInstall("/workspace", "x", (), "mesonpy")
    lines = [
        START,
        "  FAILED: _native.cpython-311-x86_64-linux-gnu.so.p/meson_lib__native.c.o",
        "  ../../../workspace/meson_lib/_native.c:4:5: error: unknown type name 'lon'",
        *PIP_TAIL,
        f"{FAILED} (exit 1)",
    ]
    error = project_failure(lines, tmp_path, meson)
    assert str(error).startswith(f"{tmp_path}/meson_lib/_native.c:4: the project's build failed"), error
    setup = [
        START,
        '  ../../../workspace/meson.build:3:0: ERROR: Unknown function "extension_modul".',
        f"{FAILED} (exit 1)",
    ]
    assert str(project_failure(setup, tmp_path, meson)).startswith(f"{tmp_path}/meson.build:3: ")


@pytest.mark.slow  # an image of its own with meson and ninja: about 5 min on a busy 2-core engine
def test_a_meson_project_that_does_not_compile_exits_2_naming_its_file(run_harness, tmp_path: Path) -> None:
    """ninja names the source from meson-python's build folder in the image; the error names the checkout's."""
    root = backend_project(tmp_path / "meson_lib", "meson_lib")
    source = root / "meson_lib" / "_native.c"
    source.write_text(source.read_text().replace("    long a, b;", "    lon a, b;"))
    done = run_harness("run", "--platform", "cpu", "--area", "it", "--root", str(root), timeout=1800)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-4000:]
    assert f"{source}:4: the project's build failed" in done.stderr and "lon" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr.split("the project's build failed")[-1]  # one paragraph, no stack


def test_a_rust_error_under_maturin_names_the_crate_s_file(tmp_path: Path) -> None:
    """The lines of a real maturin build (Debian's cargo in the image) whose lib.rs adds a string to an i64."""
    maturin = ProjectInstall("/workspace", "x", (), "maturin")
    lines = [
        START,
        "         Compiling maturin_lib v0.1.0 (/workspace)",
        "      error[E0277]: cannot add `&str` to `i64`",
        "       --> src/lib.rs:3:7",
        "        |",
        "      error: could not compile `maturin_lib` due to previous error",
        "      💥 maturin failed",
        "  ERROR: Failed building editable for maturin_lib",
        f"{FAILED} (exit 1)",
    ]
    error = project_failure(lines, tmp_path, maturin)
    assert str(error).startswith(f"{tmp_path}/src/lib.rs:3: the project's build failed"), error
    assert "cannot add `&str` to `i64`" in str(error)
