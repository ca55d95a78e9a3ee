"""Where declarations live: [tool.gpuci] declarations, --declarations, names, platforms per file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.declare.sources import Declaration, area_name, load_areas
from harness.errors import DeclarationError, UsageError

ROOT = Path(__file__).resolve().parents[2]

AREA = """\
group: Kernels
steps:
- label: Kernels Core
  commands: [pytest -v -s kernels/core]
  mirror:
    amd:
      device: mi325_1
"""
# A separate AMD file, as large GPU projects keep one: plain steps, no mirror, labels repeated.
AMD_FILE = """\
steps:
- label: "AMD: :docker: build image"
  depends_on: ~
  key: amd-build
  commands:
  - bash .buildkite/scripts/build-rocm.sh
- label: Kernels Core
  agent_pool: mi325_1
  commands: [pytest -v -s kernels/core]
- label: Kernels Core
  agent_pool: mi325_2
  commands: [pytest -v -s kernels/core -k fp8]
"""
# An older single-file pipeline: a plugin-only step, a wait, and a deprecated file left as comments.
OLD_PIPELINE = """\
steps:
- label: ":junit: Annotate"
  plugins:
  - junit-annotate#v2.4.1:
      artifacts: "*.xml"
- wait
- label: Basic Correctness
  commands:
  - pytest -v -s basic_correctness
"""


def project(tmp_path: Path, declarations: list[str] | None = None) -> Path:
    buildkite = tmp_path / ".buildkite"
    (buildkite / "test_areas").mkdir(parents=True)
    (buildkite / "test_areas" / "kernels.yaml").write_text(AREA)
    (buildkite / "test-amd.yaml").write_text(AMD_FILE)
    (buildkite / "hardware_tests").mkdir()
    (buildkite / "hardware_tests" / "amd.yaml").write_text(AMD_FILE)
    (buildkite / "test-pipeline.yaml").write_text(OLD_PIPELINE)
    (buildkite / "deprecated.yaml").write_text("# moved to .buildkite/test_areas\n")
    if declarations is not None:
        quoted = ", ".join(f'"{d}"' for d in declarations)
        (tmp_path / "pyproject.toml").write_text(f"[tool.gpuci]\ndeclarations = [{quoted}]\n")
    return tmp_path


def test_by_default_only_the_test_areas_are_read(tmp_path: Path) -> None:
    areas = load_areas(project(tmp_path))
    assert [a.name for a in areas] == ["kernels"]
    assert areas[0].platforms == ("cuda", "rocm")


def test_every_pipeline_file_a_project_names_is_read_each_in_its_form(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        [
            ".buildkite/test_areas",
            ".buildkite/test-amd.yaml:rocm",
            ".buildkite/hardware_tests",
            ".buildkite/test-pipeline.yaml",
            ".buildkite/deprecated.yaml",
        ],
    )
    areas = {a.name: a for a in load_areas(root)}
    assert sorted(areas) == ["deprecated", "hardware_tests_amd", "kernels", "test-amd", "test-pipeline"]
    amd = areas["test-amd"]
    # The AMD file's steps are ROCm's as written; the repeated label is kept, numbered.
    assert amd.platforms == ("rocm",)
    assert [s.label for s in amd.steps] == ["AMD: :docker: build image", "Kernels Core", "Kernels Core #2"]
    assert amd.steps[0].depends_on == ()
    assert areas["hardware_tests_amd"].platforms == ("cuda",)  # not declared :rocm, read as CUDA
    old = areas["test-pipeline"]
    assert [s.label for s in old.steps] == ["Basic Correctness"]
    assert any("plugins alone" in w and ":1:" not in w for w in old.warnings)
    assert any("'wait' step" in w for w in old.warnings)
    assert areas["deprecated"].steps == () and "declares nothing" in areas["deprecated"].warnings[0]


def test_globs_and_overlapping_entries_give_each_file_once(tmp_path: Path) -> None:
    root = project(tmp_path, [".buildkite/*.yaml", ".buildkite/test-amd.yaml:rocm"])
    names = [a.name for a in load_areas(root)]
    assert names == ["deprecated", "test-amd", "test-pipeline"]


def test_names_follow_the_path_under_buildkite(tmp_path: Path) -> None:
    assert area_name(tmp_path, tmp_path / ".buildkite/test_areas/lora.yaml") == "lora"
    assert area_name(tmp_path, tmp_path / ".buildkite/distributed/pipeline.yml") == "distributed_pipeline"
    assert area_name(tmp_path, tmp_path / "ci/pipeline.yml") == "ci_pipeline"


@pytest.mark.parametrize("entry", [".buildkite/test-amd.yaml:amd", ".buildkite/release.yaml@", "x.yaml@/abs"])
def test_a_bad_entry_says_the_form(entry: str) -> None:
    with pytest.raises(UsageError, match=r"PATH\[@DIR\]\[:PLATFORM"):
        Declaration.parse(entry, "pyproject.toml")


def test_a_pipeline_run_as_uploaded_starts_where_its_entry_says(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / ".buildkite" / "release.yaml").write_text(
        "steps:\n"
        "- label: Wheel\n  commands: [bash .buildkite/scripts/build-wheel.sh]\n"
        "  depends_on: [{step: image, allow_failure: true}, lint]\n"
        "- label: Docs\n  working_dir: docs\n  commands: [make html]\n"
    )
    [area] = load_areas(root, (".buildkite/release.yaml@.:cpu",))
    wheel, docs = area.steps
    assert (wheel.working_dir, docs.working_dir, wheel.platforms) == (".", "docs", ("cpu",))
    assert (wheel.depends_on, wheel.allow_failure_of) == (("image", "lint"), ("image",))


def test_two_files_of_one_name_are_an_error_with_both(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / ".buildkite" / "test_areas" / "test-amd.yaml").write_text(AREA)
    with pytest.raises(DeclarationError, match="collide"):
        load_areas(root, (".buildkite/test_areas", ".buildkite/test-amd.yaml"))


def test_lint_and_pipeline_take_declarations_from_the_command_line(tmp_path: Path) -> None:
    root = project(tmp_path)
    command = [sys.executable, "-m", "harness", "pipeline", "--root", str(root), "--all"]
    result = subprocess.run(
        [*command, "--declarations", ".buildkite/test-amd.yaml:rocm"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    (group,) = yaml.safe_load(result.stdout)["steps"]
    commands = [s["command"] for s in group["steps"]]
    assert commands[1:] == [
        "gpuci run --platform rocm --area test-amd --step 'Kernels Core'",
        "gpuci run --platform rocm --area test-amd --step 'Kernels Core #2'",
    ]  # only the file given: the test areas were not read
    assert "second step labelled 'Kernels Core'" in result.stderr
    old_pipeline = ["--declarations", ".buildkite/test-pipeline.yaml"]
    lint = subprocess.run(
        [sys.executable, "-m", "harness", "lint", "--root", str(root), *old_pipeline],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert lint.returncode in (0, 1) and "Traceback" not in lint.stderr
    assert "plugins alone" in lint.stderr


@pytest.mark.parametrize("entry", ["../elsewhere/pipeline.yaml", "/etc/pipelines/*.yaml"])
def test_an_entry_outside_the_checkout_is_refused(tmp_path: Path, entry: str) -> None:
    root = project(tmp_path / "checkout", [entry])
    with pytest.raises(UsageError) as err:
        load_areas(root)
    assert "outside the checkout" in str(err.value) and "pyproject.toml" in str(err.value)


def test_an_entry_that_names_no_file_is_an_error_not_a_dropped_pipeline(tmp_path: Path) -> None:
    root = project(tmp_path, [".buildkite/test_areas", ".buildkite/test-amdd.yaml:rocm"])
    with pytest.raises(UsageError) as err:
        load_areas(root)
    assert "'.buildkite/test-amdd.yaml' names no pipeline file" in str(err.value)


def test_an_entry_given_on_the_command_line_is_named_as_the_flags_not_the_pyproject(tmp_path: Path) -> None:
    root = project(tmp_path)
    lint = subprocess.run(
        [sys.executable, "-m", "harness", "lint", "--root", str(root), "--declarations", ".buildkite/gone.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert lint.returncode == 2, lint.stderr
    assert "--declarations: declarations entry '.buildkite/gone.yaml' names no pipeline file" in lint.stderr
    assert "pyproject.toml" not in lint.stderr


def test_a_link_out_of_the_checkout_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(AREA)
    root = project(tmp_path / "checkout", [".buildkite/linked.yaml"])
    (root / ".buildkite" / "linked.yaml").symlink_to(outside)
    with pytest.raises(UsageError) as err:
        load_areas(root)
    assert "a link out of the checkout" in str(err.value)


@pytest.mark.parametrize("stem", ["meta$(touch X)", "a b", "semi;colon", "back`tick`"])
def test_an_area_name_a_shell_would_read_is_refused(tmp_path: Path, stem: str) -> None:
    root = project(tmp_path)
    (root / ".buildkite" / "test_areas" / f"{stem}.yaml").write_text(AREA)
    with pytest.raises(DeclarationError) as err:
        load_areas(root)
    assert "rename the file" in str(err.value)


def test_a_declared_folder_is_read_with_its_subfolders(tmp_path: Path) -> None:
    root = project(tmp_path, [".buildkite/hardware_tests"])
    (root / ".buildkite" / "hardware_tests" / "nvidia").mkdir()
    (root / ".buildkite" / "hardware_tests" / "nvidia" / "h200.yaml").write_text(AREA)
    names = [a.name for a in load_areas(root)]
    assert names == ["hardware_tests_amd", "hardware_tests_nvidia_h200"]
