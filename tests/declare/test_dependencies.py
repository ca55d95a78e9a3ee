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
