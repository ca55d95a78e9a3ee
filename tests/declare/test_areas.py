from __future__ import annotations

from pathlib import Path

import pytest

from harness.declare.areas import load_area
from harness.declare.sources import load_areas
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
        ("group: g\nsteps: [\n", 3, "not valid YAML"),
        ("group: g\nsteps:\n  - label: a\n    commands: [x]\n    num_devices: 0\n", 5, "0 GPUs but runs on cuda"),
        ("group: g\nsteps:\n  - !!python/name:os.system x\n", 3, "not valid YAML for a pipeline"),
        ("group: g\nstesp: []\n", 2, "did you mean 'steps'"),
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


# Shaped like a large GPU project's test-area and AMD pipeline files (our own words and paths).
BUILDKITE_FORMS = """\
group: Kernels
depends_on: ~
x-defaults: &gpu_defaults
  timeout_in_minutes: "45"
  num_gpus: 1
  source_file_dependencies: [csrc/, kernels/]
steps:
  - label: Kernels Attention Test %N
    <<: *gpu_defaults
    depends_on: ~
    commands:
      - pytest -v -s kernels/attention --shard-id=$$BUILDKITE_PARALLEL_JOB
    parallelism: 2
    retry: {automatic: [{exit_status: -1, limit: 1}], manual: {allowed: false}}
    agents: {queue: gpu_1_queue}
    artifact_paths: ["junit/*.xml"]
    soft_fail: ~
    mirror: ~
  - wait
  - block: "Run the long kernels?"
  - group: Quantization
    steps:
      - label: Kernels Quantization Test
        <<: [*gpu_defaults]
        timeout_in_minutes: 90
        commands: [pytest -v -s kernels/quantization]
        matrix: ["fp8", "int4"]
        plugins: [{docker#v5.9.0: {image: "rocm/vllm-ci:latest"}}]
  - label: Kernels Attention Test %N
    key: attention-amd
    if: build.branch == "main"
    commands:
      - - bash -c 'node 0 cmd'
        - bash -c 'node 1 cmd'
"""


def test_buildkite_forms_of_real_pipelines_load(tmp_path: Path) -> None:
    area = load_area(write(tmp_path, BUILDKITE_FORMS))
    first, quant, again = area.steps
    # Nulls are "not set"; a merge key brings the anchor's values; numbers may be strings.
    assert first.depends_on == () and first.soft_fail is False and first.overrides == {}
    assert first.timeout_in_minutes == 45 and first.source_file_dependencies == ("csrc/", "kernels/")
    assert quant.timeout_in_minutes == 90 and quant.num_gpus == 1  # explicit keys win over the merge
    # A repeated label is numbered; per-node command lists are the step's lines.
    assert again.label == "Kernels Attention Test %N #2"
    assert again.commands == ("bash -c 'node 0 cmd'", "bash -c 'node 1 cmd'")
    said = "\n".join(area.warnings)
    for words in (
        "'wait' step",
        "'block' step",
        "'matrix' is not expanded",
        "'plugins' are not run",
        "'if' is not evaluated",
        "second step labelled",
    ):
        assert words in said
    assert all(w.startswith(f"{area.path}:") for w in area.warnings)  # file and line, every one


def test_an_alias_bomb_loads_in_bounded_time(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "\n".join(levels) + "\ngroup: g\nsteps:\n  - label: s\n    commands: [x]\n    env: {B: *a8}\n"
    with pytest.raises(DeclarationError) as err:  # 10^9 strings if expanded; refused at once instead
        load_area(write(tmp_path, text))
    assert "expands through its aliases" in str(err.value) and len(str(err.value)) < 700


def test_a_value_quoted_in_an_error_is_cut_to_a_line(tmp_path: Path) -> None:
    huge = "x" * 200_000
    text = f"group: g\nsteps:\n  - label: s\n    commands: [x]\n    timeout_in_minutes: {huge}\n"
    with pytest.raises(DeclarationError) as err:
        load_area(write(tmp_path, text))
    message = str(err.value)
    assert ":5:" in message and "characters cut" in message and len(message) < 900


def test_a_pipeline_file_past_the_size_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "group: g\nsteps:\n" + "  - label: s\n    commands: [x]\n" * 200_000)
    assert path.stat().st_size > 4 * 2**20
    with pytest.raises(DeclarationError) as err:
        load_area(path)
    assert "a pipeline file is at most 4 MiB" in str(err.value)


@pytest.mark.parametrize("label", ["two\\nlines", "bell\\a"])
def test_a_label_with_control_characters_is_refused(tmp_path: Path, label: str) -> None:
    with pytest.raises(DeclarationError) as err:
        load_area(write(tmp_path, f'group: g\nsteps:\n  - label: "{label}"\n    commands: [x]\n'))
    assert "without control characters" in str(err.value)


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"\xff\xfegroup: g\n", 1, "not UTF-8"),
        (b"group: g\nsteps:\n  - label: caf\xe9\n", 3, "byte 0xe9"),
        (b"group: g\x07\n", None, "control characters"),
    ],
)
def test_bytes_that_are_not_yaml_text_are_one_clear_error(tmp_path: Path, data: bytes, line: int, words: str) -> None:
    path = tmp_path / "area.yaml"
    path.write_bytes(data)
    with pytest.raises(DeclarationError) as err:
        load_area(path)
    assert err.value.line == line
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: [1, *a]}\n", "x: &x [1, &y [2, *x]]\n"])
def test_an_alias_inside_its_own_anchor_is_refused_at_once(tmp_path: Path, text: str) -> None:
    body = text + "group: g\nsteps:\n  - label: s\n    commands: [x]\n"
    with pytest.raises(DeclarationError) as err:  # expands without end: once, it looped until memory ran out
        load_area(write(tmp_path, body))
    assert "expands through its aliases" in str(err.value)


def test_a_document_is_sized_the_same_with_or_without_aliases() -> None:
    import yaml

    from harness.declare.yaml_nodes import expanded_size

    plain = yaml.compose("steps:\n  - label: a\n    commands: [x, y]\n  - label: b\n")
    shared = yaml.compose("x: &a [1, 2, 3]\ny: *a\nz: [*a, *a]\n")
    assert expanded_size(plain, 100) == 13  # every mapping, sequence, key and value once
    assert expanded_size(plain, 5) == 6  # past the limit: limit + 1
    assert expanded_size(shared, 100) == 1 + (1 + 4) + (1 + 4) + (1 + 1 + 4 + 4)  # an alias as what it expands to
