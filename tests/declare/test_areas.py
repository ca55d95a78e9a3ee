from __future__ import annotations

from pathlib import Path

import pytest

from harness.declare.areas import load_area, load_areas
from harness.errors import DeclarationError

ROOT = Path(__file__).resolve().parents[2]

# In the shape large GPU projects write for Buildkite, with keys gpuci does not use.
FOREIGN = """\
group: Engine
depends_on:
  - image-build
steps:
- label: Engine Test
  key: engine-test
  timeout_in_minutes: 15
  device: h100
  num_devices: 2
  agent_tags: {queue: gpu}
  source_file_dependencies:
  - vllm/engine
  - "!vllm/engine/legacy"
  commands:
  - pytest -v -s engine
  retry: {automatic: [{exit_status: -1, limit: 1}]}
  mirror:
    amd:
      device: mi325_1
      commands: [pytest -v -s engine]
- label: Docs Build
  no_gpu: true
  working_dir: /vllm-workspace/docs
  commands: [make html]
  plugins: [{docker#v5: {image: x}}]
"""


def write(tmp_path: Path, text: str, name: str = "area.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_example_area_loads_on_three_platforms() -> None:
    (area,) = load_areas(ROOT)
    assert area.name == "sampler"
    assert area.platforms == ("cpu", "cuda", "rocm")
    assert area.steps[0].commands == ("pytest -v tests/areas/sampler",)
    assert area.steps[0].line == 5


def test_a_foreign_pipeline_file_loads_unchanged(tmp_path: Path) -> None:
    area = load_area(write(tmp_path, FOREIGN))
    engine, docs = area.steps
    assert engine.platforms == ("cuda", "rocm")
    assert engine.num_gpus == 2
    assert engine.agent_tags == {"queue": "gpu"}
    assert engine.source_file_dependencies == ("vllm/engine", "!vllm/engine/legacy")
    assert docs.platforms == ("cpu",)
    assert docs.working_dir == "/vllm-workspace/docs"
    assert "plugins" in docs.extra


def test_a_misspelt_key_names_file_line_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "group: g\nsteps:\n  - label: a\n    comands: [pytest]\n")
    with pytest.raises(DeclarationError) as err:
        load_area(path)
    assert f"{path}:4" in str(err.value)
    assert "'comands'" in str(err.value) and "did you mean 'commands'" in str(err.value)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "group: g\nsteps:\n  - label: a\n    commands: [x]\n    timeout_in_minutes: soon\n",
            5,
            "must be int",
        ),
        (
            "group: g\nsteps:\n  - label: a\n    commands: [x]\n    platforms: [cdua]\n",
            5,
            "did you mean 'cuda'",
        ),
        ("group: g\nsteps:\n  - label: a\n", 3, "has no 'commands'"),
        ("group: g\nsteps:\n  - commands: [x]\n", 3, "has no 'label'"),
        ("group: g\nsteps: [\n", 3, "not valid YAML"),
        ("group: g\nstesp: []\n", 2, "did you mean 'steps'"),
        (
            "group: g\nsteps:\n  - {label: a, commands: [x]}\n  - {label: a, commands: [y]}\n",
            4,
            "labelled 'a'",
        ),
        (
            "group: g\nsteps:\n  - label: a\n    commands: [x]\n    shutdown_budget: {cuda: -1}\n",
            5,
            "seconds",
        ),
    ],
)
def test_bad_declarations_are_one_clear_error(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DeclarationError) as err:
        load_area(path)
    assert err.value.line == line
    assert words in str(err.value)


def test_shutdown_budget_overrides_per_platform(tmp_path: Path) -> None:
    text = "group: g\nplatforms: [cpu, rocm]\nsteps:\n  - label: a\n    commands: [x]\n    shutdown_budget: {rocm: 6}\n"
    (step,) = load_area(write(tmp_path, text)).steps
    assert step.platforms == ("cpu", "rocm")
    assert step.shutdown_budget == {"rocm": 6.0}


def test_two_files_for_one_area_collide(tmp_path: Path) -> None:
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    for name in ("x.yaml", "x.yml"):
        write(areas, "steps: [{label: a, commands: [b]}]\n", name)
    with pytest.raises(DeclarationError, match="would collide"):
        load_areas(tmp_path)
