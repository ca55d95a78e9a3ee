"""The generated pipeline: Buildkite's published schema, change selection, keys, retries, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.ci.buildkite import Selection, generate, matches, to_yaml, touches
from harness.declare.config import ProjectConfig
from harness.declare.sources import load_areas
from harness.images import engine
from harness.run.cleanup.reaper import PROJECT_LABEL, project_id
from tests.conftest import ROOT, harness_cmd, harness_env
from tests.synthetic import synthetic_project

SCHEMA = json.loads((ROOT / "tests" / "data" / "buildkite-pipeline.schema.json").read_text())


def validate(pipeline: dict) -> None:
    jsonschema.validate(pipeline, SCHEMA)


def all_steps(pipeline: dict) -> list[dict]:
    return [step for group in pipeline["steps"] for step in group["steps"]]


def test_the_pipeline_of_this_repository_validates() -> None:
    pipeline = generate(load_areas(ROOT), ProjectConfig(), Selection(None))
    validate(pipeline)
    commands = [s["command"] for s in all_steps(pipeline)]
    assert commands == [f"gpuci run --platform {p} --area sampler --step sampler" for p in ("cpu", "cuda", "rocm")]


def test_with_a_registry_each_platform_gets_one_image_step_its_test_steps_depend_on() -> None:
    config = ProjectConfig(registry="registry.example.com:5000/ci", queues={"build": "docker-builders"})
    pipeline = generate(load_areas(ROOT), config, Selection(None))
    validate(pipeline)
    images, *areas = pipeline["steps"]
    assert [s["key"] for s in images["steps"]] == ["image-cpu", "image-cuda", "image-rocm"]
    assert {s["agents"]["queue"] for s in images["steps"]} == {"docker-builders"}
    assert images["steps"][1]["command"] == "gpuci image publish --platform cuda"
    for step in (s for group in areas for s in group["steps"]):
        assert step["depends_on"][0] == f"image-{step['env']['GPUCI_PLATFORM']}"


def test_without_a_registry_there_is_no_image_step() -> None:
    pipeline = generate(load_areas(ROOT), ProjectConfig(), Selection(None))
    assert all(not s["key"].startswith("image-") for s in all_steps(pipeline))
    assert all("depends_on" not in s for s in all_steps(pipeline))


def test_500_steps_with_amd_mirrors_validate(tmp_path: Path) -> None:
    areas = load_areas(synthetic_project(tmp_path))
    config = ProjectConfig(queues={"h100": "gpu-h100", "mi325_1": "amd-mi325", "cpu": "cpu"})
    pipeline = generate(areas, config, Selection(None, include_optional=True))
    validate(pipeline)
    steps = all_steps(pipeline)
    assert len(steps) == 1000  # a CUDA and a ROCm form of each
    assert len({s["key"] for s in steps}) == 1000
    rocm = [s for s in steps if s["label"].endswith("(rocm)")]
    assert {s["agents"]["queue"] for s in rocm} == {"amd-mi325"}
    assert rocm[0]["command"] == "gpuci run --platform rocm --area area0 --step 'Area 0 step 0'"
    assert rocm[0]["parallelism"] == 2 and rocm[0]["retry"]["automatic"][0] == {"exit_status": 75, "limit": 2}
    assert not any(rule["exit_status"] == 1 for s in steps for rule in s["retry"]["automatic"])


def test_keys_are_stable_across_runs(tmp_path: Path) -> None:
    root = synthetic_project(tmp_path, areas=2, steps_per_area=3)
    first = generate(load_areas(root), ProjectConfig(), Selection(None))
    again = generate(load_areas(root), ProjectConfig(), Selection(None))
    assert [s["key"] for s in all_steps(first)] == [s["key"] for s in all_steps(again)]


def test_a_change_selects_only_the_steps_it_touches(tmp_path: Path) -> None:
    areas = load_areas(synthetic_project(tmp_path, areas=3, steps_per_area=3))
    pipeline = generate(areas, ProjectConfig(run_all=()), Selection(("tests/area1/test_2.py",)))
    validate(pipeline)
    commands = [s for s in all_steps(pipeline) if "command" in s]
    running = [s["label"] for s in commands if not any(d.startswith("block-") for d in s.get("depends_on", []))]
    assert running == ["Area 1 step 2 (cuda)", "Area 1 step 2 (rocm)"]
    blocks = [s for s in all_steps(pipeline) if "block" in s]
    assert len(blocks) == len(commands) - 2  # the rest wait for someone to unblock them


def test_run_all_patterns_and_excludes() -> None:
    assert matches("pkg/a/b.py", "pkg/a") and matches("pkg/a", "pkg/a") and not matches("pkg/ab.py", "pkg/a")
    assert touches("pkg/area1/x.py", ["pkg/area1", "!pkg/area1/docs"])
    assert not touches("pkg/area1/docs/x.md", ["pkg/area1", "!pkg/area1/docs"])
    step = load_areas(ROOT)[0].steps[0]
    assert Selection(("harness/cli.py",)).runs(step)  # listed in the sampler's dependencies
    assert Selection(("pyproject.toml",), run_all=("pyproject.toml",)).runs(step)
    assert not Selection(("README.md",)).runs(step)


def test_the_cli_prints_yaml_for_a_list_of_changed_files(run_harness, tmp_path: Path) -> None:
    changed = tmp_path / "changed.txt"
    changed.write_text("README.md\n")
    done = run_harness("pipeline", "--changed-files", str(changed))
    assert done.returncode == 0, done.stderr
    pipeline = yaml.safe_load(done.stdout)
    validate(pipeline)
    assert len([s for s in all_steps(pipeline) if "block" in s]) == 3


AREA = """\
platforms: [cpu]
steps:
  - label: stubborn
    commands: ["trap '' TERM; echo started; while true; do sleep 0.1; done"]
"""


def test_an_agent_cancel_stops_the_container_and_writes_the_report_within_its_grace(
    make_project, cpu_image, docker_client
) -> None:
    """The agent sends SIGTERM to the job's process group and SIGKILL after its grace period."""
    root = make_project(AREA, name="agentcancel")
    grace = 10
    env = harness_env(BUILDKITE="true", BUILDKITE_CANCEL_GRACE_PERIOD=str(grace))
    job = subprocess.Popen(
        [
            "bash",
            "-c",
            " ".join(harness_cmd("run", "--platform", "cpu", "--area", "agentcancel", "--root", str(root))),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    label = ["gpuci.area=agentcancel", f"{PROJECT_LABEL}={project_id(root)}"]  # this test's run, no twin's
    deadline = time.monotonic() + 60
    while not engine.list_containers(docker_client, label, status="running"):
        assert time.monotonic() < deadline and job.poll() is None
        time.sleep(0.1)
    time.sleep(0.5)
    cancelled = time.monotonic()
    os.killpg(job.pid, signal.SIGTERM)
    try:
        job.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)  # what the agent would do; the test has failed by now
        pytest.fail(f"the job outlived the agent's {grace}s cancel grace")
    took = time.monotonic() - cancelled
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    assert report["outcome"] == "cancelled" and took < grace
    assert engine.list_containers(docker_client, label) == []


def test_a_dependency_whose_failure_is_allowed_stays_so_in_the_pipeline(tmp_path: Path) -> None:
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "models.yaml").write_text(
        "group: Models\n"
        "steps:\n"
        "- label: Smoke\n  key: smoke\n  platforms: [cpu]\n  commands: [pytest tests/smoke]\n"
        "- label: Full\n  platforms: [cpu]\n  commands: [pytest tests]\n"
        "  depends_on: [{step: smoke, allow_failure: true}]\n"
    )
    pipeline = generate(load_areas(tmp_path), ProjectConfig(), Selection(None))
    validate(pipeline)
    [full] = [s for s in all_steps(pipeline) if s["label"].startswith("Full")]
    assert full["depends_on"] == [{"step": "smoke", "allow_failure": True}]


def test_a_label_reaches_the_agents_shell_as_one_word(tmp_path: Path) -> None:
    import shlex

    label = "kernels $(touch INJECTED) `id` ; rm -rf / 'quoted' \"double\""
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "k.yaml").write_text(
        yaml.safe_dump({"steps": [{"label": label, "commands": ["pytest"], "platforms": ["cpu"]}]})
    )
    pipeline = generate(load_areas(tmp_path), ProjectConfig(), Selection(None))
    command = all_steps(pipeline)[0]["command"]
    # The agent first undoes the `$$` escape (its upload-time interpolation), then its shell splits.
    words = shlex.split(command.replace("$$", "$"))
    assert words == ["gpuci", "run", "--platform", "cpu", "--area", "k", "--step", label]


def _buildkite_interpolate(text: str, env: dict[str, str]) -> str:
    """What the uploading agent does to every string before it runs a step: `$$` is one literal `$`,
    `$VAR`, `${VAR}` and `${VAR:-default}` are the agent's variables (or the default)."""
    import re

    pattern = r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?::?-(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group("braced") or match.group("bare"), match.group("default") or "")

    return re.sub(pattern, one, text)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_no_declared_string_is_interpolated_by_the_uploading_agent(tmp_path: Path) -> None:
    import shlex

    secret = "AGENT-TOKEN-0123456789"
    hostile = {
        "group": "grp ${BUILDKITE_AGENT_ACCESS_TOKEN} $BUILDKITE_AGENT_ACCESS_TOKEN",
        "steps": [
            {
                "label": "t ${BUILDKITE_AGENT_ACCESS_TOKEN} $$BUILDKITE_AGENT_ACCESS_TOKEN $$$HOME ${X:-$HOME}",
                "key": "k$HOME",
                "commands": ["pytest"],
                "platforms": ["cpu"],
                "agent_tags": {"pool": "${BUILDKITE_AGENT_ACCESS_TOKEN}"},
                "concurrency": 1,
                "concurrency_group": "g/${BUILDKITE_AGENT_ACCESS_TOKEN}",
                "optional": True,
            },
            {"label": "plain", "commands": ["pytest"], "platforms": ["cpu"], "depends_on": ["k$HOME"]},
        ],
    }
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "k.yaml").write_text(yaml.safe_dump(hostile))
    config = ProjectConfig(registry="registry.example.com/ci", queues={"cpu": "q-${BUILDKITE_AGENT_ACCESS_TOKEN}"})
    for selection in (Selection(None, include_optional=True), Selection(())):  # command steps, then block steps
        pipeline = yaml.safe_load(to_yaml(generate(load_areas(tmp_path), config, selection)))
        validate(pipeline)
        env = {"BUILDKITE_AGENT_ACCESS_TOKEN": secret, "HOME": "/root", "X": "x"}
        seen = [_buildkite_interpolate(s, env) for s in _strings(pipeline)]
        assert not any(secret in s or "/root" in s for s in seen), seen
        # what the agent ends with is what was declared, to the byte
        label = hostile["steps"][0]["label"]
        assert any(s.startswith(f"Run {label} (cpu)") or s.startswith(f"{label} (cpu)") for s in seen)
        assert hostile["group"] in seen
        commands = [_buildkite_interpolate(s["command"], env) for s in all_steps(pipeline) if "command" in s]
        words = ["gpuci", "run", "--platform", "cpu", "--area", "k", "--step", label]
        assert words in [shlex.split(c) for c in commands]
        assert "gpuci image publish --platform cpu" in commands


def test_every_step_calls_the_installed_gpuci_never_nox_or_python(tmp_path: Path) -> None:
    root = synthetic_project(tmp_path, areas=3, steps_per_area=4)
    config = ProjectConfig(registry="registry.example.com/ci", python=("3.11", "3.13"))
    pipeline = generate(load_areas(root), config, Selection(None, include_optional=True))
    validate(pipeline)
    commands = [s["command"] for s in all_steps(pipeline) if "command" in s]
    assert commands and all(c.split()[0] == "gpuci" for c in commands)
    assert not any(word in c.split() for c in commands for word in ("nox", "python", "python3", "-m", "noxfile.py"))


def test_a_jobs_timeout_is_its_steps_plus_the_images_and_the_leases_bounded_time(run_harness, tmp_path: Path) -> None:
    """A cold agent builds or pulls the image, and waits for GPUs another run holds, before the step's
    clock starts: the job gets the step's minutes, the image's (image_timeout, 20 by default, at most
    60), the lease's where the step leases GPUs (lease_timeout, 10 by default, at most 60) and two for
    the stop."""
    area = (
        "platforms: [cpu]\nsteps:\n  - label: t\n    commands: [pytest]\n    timeout_in_minutes: 15\n"
        "  - label: no-gpu\n    commands: [pytest]\n    timeout_in_minutes: 15\n    num_gpus: 0\n"
    )
    (tmp_path / ".buildkite" / "test_areas").mkdir(parents=True)
    (tmp_path / ".buildkite" / "test_areas" / "a.yaml").write_text(area)
    pipeline = generate(load_areas(tmp_path), ProjectConfig(), Selection(None))
    validate(pipeline)
    assert [s["timeout_in_minutes"] for s in all_steps(pipeline)] == [15 + 20 + 10 + 2, 15 + 20 + 2]
    pipeline = generate(load_areas(tmp_path), ProjectConfig(image_timeout=300, lease_timeout=61), Selection(None))
    assert [s["timeout_in_minutes"] for s in all_steps(pipeline)] == [15 + 5 + 2 + 2, 15 + 5 + 2]

    (tmp_path / "pyproject.toml").write_text("[tool.gpuci]\nimage_timeout = 600\nlease_timeout = 1800\n")
    done = run_harness("pipeline", "--all", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [s["timeout_in_minutes"] for s in all_steps(yaml.safe_load(done.stdout))] == [15 + 10 + 30 + 2, 15 + 10 + 2]
    flagged = run_harness(
        "pipeline", "--all", "--root", str(tmp_path), "--image-timeout", "60", "--lease-timeout", "0.5"
    )
    assert [s["timeout_in_minutes"] for s in all_steps(yaml.safe_load(flagged.stdout))] == [15 + 1 + 1 + 2, 15 + 1 + 2]
    # The pull request's settings are bounded: days of agent time are refused, saying what to do.
    for key in ("image_timeout", "lease_timeout"):
        (tmp_path / "pyproject.toml").write_text(f"[tool.gpuci]\n{key} = 86400\n")
        refused = run_harness("pipeline", "--all", "--root", str(tmp_path))
        assert refused.returncode == 2 and key in refused.stderr and "at most 3600" in refused.stderr
        assert "Traceback" not in refused.stderr and refused.stdout == ""
        refused = run_harness("run", "--platform", "cpu", "--area", "a", "--root", str(tmp_path))
        assert refused.returncode == 2 and key in refused.stderr and "at most 3600" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_declared_concurrency_group_stays_under_gpucis_prefix(tmp_path: Path) -> None:
    area = "steps:\n  - label: t\n    commands: [pytest]\n    platforms: [cpu]\n    concurrency: 1\n"
    (tmp_path / ".buildkite" / "test_areas").mkdir(parents=True)
    for group, wanted in [("deploy-prod", "gpuci/deploy-prod"), ("gpuci/mine", "gpuci/mine")]:
        (tmp_path / ".buildkite" / "test_areas" / "a.yaml").write_text(area + f"    concurrency_group: {group}\n")
        [step] = all_steps(generate(load_areas(tmp_path), ProjectConfig(), Selection(None)))
        assert step["concurrency_group"] == wanted
