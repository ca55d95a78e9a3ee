"""A run's request, resolved once without Docker: the steps held against the host policy, each step's
image Python, timeout and stop budget, the stop policy within the CI agent's grace, what is passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.declare.config import load_config
from harness.declare.request import Asked, resolve
from harness.errors import UsageError

AREA = """\
platforms: [cpu]
steps:
  - label: unit
    commands: ["pytest -q"]
    timeout_in_minutes: 2
    python: "3.13"
  - label: wide
    commands: ["true"]
    network: host
  - label: extra
    optional: true
    commands: ["true"]
"""


def project(root: Path, area: str = AREA, table: str = "") -> Path:
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    (root / ".buildkite" / "test_areas" / "demo.yaml").write_text(area)
    (root / "pyproject.toml").write_text(f'[project]\nname = "demo"\n[tool.gpuci]\n{table}')
    return root


def test_a_request_holds_every_step_that_runs_with_its_python_timeout_and_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BUILDKITE_ANALYTICS_TOKEN", raising=False)
    root = project(tmp_path, table='python = ["3.11"]\nsecrets = ["HF_TOKEN"]\n')
    request = resolve(root, load_config(root, for_host=False), Asked("cpu", "demo", container=False, env_names=("X",)))
    assert [s.step.label for s in request.steps] == ["unit", "wide"]  # the optional step only when named
    unit, wide = request.steps
    assert unit.python == "3.13" and wide.python == "3.11"  # the step's, else [tool.gpuci]'s on gpuci's base
    assert unit.timeout_s == 120.0 and wide.timeout_s is None
    assert unit.budget_s == request.platform.shutdown_budget_s
    assert request.session == "cpu_demo" and request.pass_env == ("HF_TOKEN", "X") and request.mounts == ()


def test_in_a_container_each_step_is_held_against_the_policy_before_anything_runs(tmp_path: Path) -> None:
    root = project(tmp_path)
    config = load_config(root, for_host=False)
    with pytest.raises(UsageError, match="networks"):
        resolve(root, config, Asked("cpu", "demo", "wide"))
    assert resolve(root, config, Asked("cpu", "demo", "unit")).steps[0].step.label == "unit"


def test_the_stop_fits_the_ci_agents_cancel_grace_and_its_token_is_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, table="grace = 20\n")
    monkeypatch.setenv("BUILDKITE", "true")
    monkeypatch.setenv("BUILDKITE_CANCEL_GRACE_PERIOD", "10")
    monkeypatch.setenv("BUILDKITE_ANALYTICS_TOKEN", "token")
    request = resolve(root, load_config(root, for_host=False), Asked("cpu", "demo", "unit"))
    assert request.stop.grace_s == 4.0 and request.ci.cancel_grace_s == 10.0  # 0.4 of the agent's grace
    assert request.ci.test_engine and "BUILDKITE_ANALYTICS_TOKEN" in request.pass_env


def test_an_area_with_no_step_on_the_platform_is_one_clear_error(tmp_path: Path) -> None:
    root = project(tmp_path, area="platforms: [cuda]\nsteps:\n  - label: gpu\n    commands: ['true']\n")
    with pytest.raises(UsageError, match="has no step that runs on cpu"):
        resolve(root, load_config(root, for_host=False), Asked("cpu", "demo"))
