"""source_file_dependencies matched as the project's generator does: by component or by substring."""

from __future__ import annotations

from pathlib import Path

from harness.ci.lint import lint
from harness.declare.config import load_config
from harness.declare.dependencies import matches, touches
from harness.declare.sources import load_areas


def test_component_match_never_takes_a_longer_name() -> None:
    assert matches("vllm/config/model.py", "vllm/config")
    assert not matches("vllm/config.py", "vllm/config")
    assert not matches("vllm/configs/x.py", "vllm/config")


def test_substring_match_takes_what_contains_the_entry() -> None:
    assert matches("vllm/config.py", "vllm/config", "substring")
    assert matches("tests/vllm/config/x.py", "vllm/config", "substring")
    assert not touches(
        "vllm/distributed/kv_transfer/a.py", ["vllm/distributed", "!vllm/distributed/kv_transfer"], "substring"
    )
    assert touches("vllm/distributed/comm.py", ["vllm/distributed", "!vllm/distributed/kv_transfer"], "substring")


def test_lint_judges_a_dead_dependency_by_the_projects_match(tmp_path: Path) -> None:
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "config.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_config.py").write_text("def test_x():\n    pass\n")
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "config.yaml").write_text(
        "group: c\nplatforms: [cpu]\nsteps:\n- label: config\n  source_file_dependencies: [vllm/config]\n"
        "  commands: [pytest tests/test_config.py]\n"
    )
    findings, _ = lint(tmp_path, load_areas(tmp_path), load_config(tmp_path))
    assert [f.kind for f in findings] == ["dead-dependency"]  # no file is vllm/config or under it
    (tmp_path / "pyproject.toml").write_text('[tool.gpuci]\ndependency_match = "substring"\n')
    findings, _ = lint(tmp_path, load_areas(tmp_path), load_config(tmp_path))
    assert findings == []  # its generator matches vllm/config.py: the step does run on changes there


def test_prefix_match_takes_what_starts_with_the_entry_as_written() -> None:
    assert matches("tests/test_config.py", "tests/test_config", "prefix")
    assert matches("vllm/configs/x.py", "vllm/config", "prefix")
    assert not matches("tests/vllm/config.py", "vllm/config", "prefix")  # not a substring match
    assert not matches("vllm_extra/x.py", "vllm/", "prefix")  # the trailing slash is kept


def test_each_pipeline_file_is_matched_as_its_own_generator_does(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_config.py").write_text("def test_x():\n    pass\n")
    step = (
        "- label: config\n  source_file_dependencies: [tests/test_config]\n  commands: [pytest tests/test_config.py]\n"
    )
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "config.yaml").write_text(f"group: c\nplatforms: [cpu]\nsteps:\n{step}")
    (tmp_path / ".buildkite" / "test-amd.yaml").write_text(f"steps:\n{step}")
    (tmp_path / "pyproject.toml").write_text(
        "[tool.gpuci]\n"
        'declarations = [".buildkite/test_areas", ".buildkite/test-amd.yaml:rocm"]\n'
        "[tool.gpuci.dependency_match_for]\n"
        '".buildkite/test-amd.yaml" = "prefix"\n'
    )
    config = load_config(tmp_path)
    findings, _ = lint(tmp_path, load_areas(tmp_path, config.declarations), config)
    # The generator of the test areas matches components (dead); the AMD template, string prefixes (live).
    assert [(f.kind, f.file) for f in findings] == [("dead-dependency", ".buildkite/test_areas/config.yaml")]


def test_a_bad_mode_is_refused_with_the_file_and_line(tmp_path: Path) -> None:
    import pytest

    from harness.errors import UsageError

    (tmp_path / "pyproject.toml").write_text('[tool.gpuci.dependency_match_for]\n"x.yaml" = "glob"\n')
    with pytest.raises(UsageError, match=r"pyproject.toml:1: .*'x.yaml' is 'glob'.*prefix"):
        load_config(tmp_path)


def test_change_selection_uses_the_mode_of_the_steps_pipeline_file(tmp_path: Path) -> None:
    from harness.ci.buildkite import Selection
    from harness.declare.areas import Step

    step = Step("config", ("pytest tests/test_config.py",), ("cpu",), 1, ("tests/test_config",))
    selection = Selection(("tests/test_config.py",), dependency_match_for={".buildkite/test-amd.yaml": "prefix"})
    assert selection.runs(step, tmp_path / ".buildkite" / "test-amd.yaml")
    assert not selection.runs(step, tmp_path / ".buildkite" / "test_areas" / "config.yaml")
