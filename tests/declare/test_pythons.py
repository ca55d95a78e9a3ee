"""Choosing the Python: [tool.gpuci] python, a step's python, --python; a session and a job per version."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.ci.buildkite import Selection, generate
from harness.declare.config import load_config
from harness.declare.pythons import SUITES
from harness.declare.sources import load_areas
from harness.errors import DeclarationError, UsageError
from harness.images.recipe import recipe_for
from tests.conftest import ROOT

AREA = """\
group: versions
platforms: [cpu]
steps:
  - label: each
    num_gpus: 0
    commands: [pytest -q]
  - label: pinned
    num_gpus: 0
    python: 3.14
    commands: [pytest -q]
"""


def project(root: Path, python: str = '["3.11", "3.13"]') -> Path:
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    (root / ".buildkite" / "test_areas" / "versions.yaml").write_text(AREA)
    (root / "pyproject.toml").write_text(f"[tool.gpuci]\npython = {python}\n")
    shutil.copytree(ROOT / "containers", root / "containers")
    (root / "noxfile.py").write_text(
        "from pathlib import Path\nfrom harness.sessions import area_sessions\narea_sessions(Path(__file__).parent)\n"
    )
    return root


def test_debians_stable_and_testing_pythons_are_offered() -> None:
    assert {"3.13", "3.14"} <= set(SUITES) and SUITES["3.13"] == "trixie"


def test_a_version_and_a_list_are_read_and_an_unknown_one_is_refused_with_file_and_line(tmp_path: Path) -> None:
    assert load_config(project(tmp_path / "a")).python == ("3.11", "3.13")
    assert load_config(project(tmp_path / "b", '"3.13"')).python == ("3.13",)
    (tmp_path / "b" / "pyproject.toml").write_text('[tool.gpuci]\n\npython = "3.12"\n')
    with pytest.raises(UsageError) as err:
        load_config(tmp_path / "b")
    assert "pyproject.toml:3" in str(err.value) and "3.11, 3.13, 3.14" in str(err.value)
    steps = {s.label: s.python for s in load_areas(tmp_path / "a")[0].steps}
    assert steps == {"each": None, "pinned": "3.14"}  # `python: 3.14` (a YAML number) read as the version
    (tmp_path / "a" / ".buildkite" / "test_areas" / "versions.yaml").write_text(AREA.replace("3.14", "2.7"))
    with pytest.raises(DeclarationError) as bad:
        load_areas(tmp_path / "a")
    assert "versions.yaml:9" in str(bad.value) and "'python' must be one of" in str(bad.value)


def test_the_version_picks_the_debian_base_and_so_the_tag(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    default, chosen = recipe_for(root, "cpu"), recipe_for(root, "cpu", python="3.13")
    assert chosen.build_args["BASE_IMAGE"].startswith("gpuci/base:trixie-")
    assert chosen.base_recipe is not None and chosen.base_recipe.suite == "trixie"
    assert default.build_args["BASE_IMAGE"].startswith("gpuci/base:bookworm-") and default.tag != chosen.tag
    with pytest.raises(UsageError) as err:
        recipe_for(root, "cuda", python="3.13")  # a vendor's base runs the Python it ships
    assert "--base-image local" in str(err.value)
    assert recipe_for(root, "cuda", base_image="local", python="3.13").base_recipe.suite == "trixie"  # type: ignore[union-attr]


def test_a_session_per_version_as_nox_parametrizes(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-l"], cwd=root, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[1] for line in listed.stdout.splitlines() if line[:2] in ("* ", "- ")]
    assert {"cpu_versions-3.11", "cpu_versions-3.13", "cpu_versions"} <= set(names)
    assert "cuda_versions-3.13" not in names  # only what builds on gpuci's Debian base has a choice


def test_the_pipeline_has_a_job_per_version_where_the_step_chose_none(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    config = load_config(root)
    pipeline = generate(load_areas(root), config, Selection(None))
    commands = [s["command"] for g in pipeline["steps"] for s in g["steps"] if "command" in s]
    assert commands == [
        "gpuci run --platform cpu --area versions --step each --python 3.11",
        "gpuci run --platform cpu --area versions --step each --python 3.13",
        "gpuci run --platform cpu --area versions --step pinned",  # its own python: one job
    ]
    labels = [s["label"] for g in pipeline["steps"] for s in g["steps"]]
    assert "each (cpu, Python 3.13)" in labels
    assert yaml.safe_dump(pipeline)  # still plain YAML


def test_a_step_runs_on_the_python_chosen_for_it(run_harness, tmp_path: Path) -> None:
    """Debian stable's Python, bootstrapped from trixie's packages, in a real container."""
    root = project(tmp_path / "p")
    step = {
        "label": "which",
        "num_gpus": 0,
        "commands": ["python3 -c 'import sys; print(\"running on\", sys.version)'"],
    }
    (root / ".buildkite" / "test_areas" / "versions.yaml").write_text(
        yaml.safe_dump({"group": "v", "platforms": ["cpu"], "steps": [step]})
    )
    done = run_harness("run", "--platform", "cpu", "--area", "versions", "--root", str(root), "--python", "3.13",
                       timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "running on 3.13." in done.stdout


def test_a_session_of_several_pythons_runs_each_even_when_one_fails_and_ends_with_the_worst_code(
    tmp_path: Path,
) -> None:
    """`nox -s cpu_versions` with [tool.gpuci] python = 3.11 and 3.13: the first fails (exit 1), the second
    still runs (and passes); on CI the session ends with the worst code, 1."""
    import json
    import os

    root = project(tmp_path / "p")
    step = {
        "label": "which",
        "num_gpus": 0,
        "commands": ["python3 -c 'import sys; print(\"on\", sys.version[:4]); sys.exit(sys.version_info < (3, 12))'"],
    }
    (root / ".buildkite" / "test_areas" / "versions.yaml").write_text(
        yaml.safe_dump({"group": "v", "platforms": ["cpu"], "steps": [step]})
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "true"}
    env.setdefault("GPUCI_WHEELHOUSE", str(ROOT / ".gpuci" / "wheelhouse"))
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "cpu_versions"],
        cwd=root, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "on 3.11" in done.stdout and "on 3.13" in done.stdout  # the second ran after the first failed
    assert "3.11 exited 1, 3.13 exited 0" in done.stderr
    runs = [json.loads(p.read_text()) for p in (root / ".gpuci" / "runs").glob("2*/report.json")]
    assert sorted(r["gpuci_exit_code"] for r in runs) == [0, 1]
