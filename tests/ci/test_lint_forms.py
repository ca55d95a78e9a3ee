"""Command forms as the agent runs them: find with -maxdepth and -not, torchrun and python3 FILE.

Snippets in the shape of a large GPU project's steps (our own words and paths).
"""

from __future__ import annotations

from pathlib import Path

from harness.ci.lint import lint
from harness.declare.config import ProjectConfig
from harness.declare.sources import load_areas
from tests.ci.test_lint import project

FILES = {
    "tests/compile/test_basic.py": "def test_a(): pass\n",
    "tests/compile/test_slow.py": "def test_b(): pass\n",
    "tests/compile/fullgraph/test_full.py": "def test_c(): pass\n",
    "tests/distributed/test_same_node.py": "def test_d(): pass\n",
    "tests/distributed/test_events.py": "def test_e(): pass\n",
}


def unrun(root: Path) -> list[str]:
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    return sorted(f.path or "" for f in findings if f.kind == "unrun-test")


def test_find_with_maxdepth_does_not_reach_a_test_moved_one_folder_down(tmp_path: Path) -> None:
    steps = [
        {
            "label": "Compile",
            "platforms": ["cpu"],
            "commands": [
                "find tests/compile -maxdepth 1 -name 'test_*.py' -not -name 'test_slow.py' | xargs pytest -v",
                "pytest tests/distributed",
            ],
        }
    ]
    root = project(tmp_path, steps, FILES)
    assert unrun(root) == ["tests/compile/fullgraph/test_full.py", "tests/compile/test_slow.py"]


def test_torchrun_and_python3_run_the_file_they_name(tmp_path: Path) -> None:
    steps = [
        {
            "label": "Distributed",
            "platforms": ["cpu"],
            "commands": [
                "pytest tests/compile",
                "VLLM_TEST_SAME_HOST=1 torchrun --nproc-per-node=4 tests/distributed/test_same_node.py | grep passed",
                "python3 tests/distributed/test_events.py",
            ],
        }
    ]
    root = project(tmp_path, steps, FILES)
    assert unrun(root) == []


CONFTEST = """\
def pytest_addoption(parser):
    parser.addoption("--model", action="store", default="facebook/opt-125m")
    parser.addoption(
        "--metric", type=float, help="accuracy to reach"
    )
    parser.addoption("--full", action="store_true")
"""


def test_values_of_the_projects_own_pytest_options_are_not_paths(tmp_path: Path) -> None:
    steps = [
        {
            "label": "Accuracy",
            "platforms": ["cpu"],
            "commands": [
                "pytest -s tests/compile --model meta-llama/Llama-3-8B --metric 0.58 --full",
                "pytest tests/distributed",
            ],
        }
    ]
    root = project(tmp_path, steps, {**FILES, "tests/conftest.py": CONFTEST})
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    assert [(f.kind, f.path) for f in findings] == []  # neither the model name nor 0.58 is a missing path


def test_cd_back_to_the_repository_root_is_the_root(tmp_path: Path) -> None:
    """`cd ..` from the tests folder, in a step and in a script it runs: paths resolve from the root."""
    steps = [
        {
            "label": "From the root",
            "platforms": ["cpu"],
            "working_dir": "/vllm-workspace/tests",
            "commands": ["cd .. && pytest tests/compile"],
        },
        {
            "label": "Script",
            "platforms": ["cpu"],
            "working_dir": "/vllm-workspace/tests",
            "commands": ["bash ../scripts/run_distributed.sh"],
        },
    ]
    files = {**FILES, "scripts/run_distributed.sh": "cd ..\npytest tests/distributed\n"}
    root = project(tmp_path, steps, files)
    config = ProjectConfig(workspace="/vllm-workspace", default_working_dir="/vllm-workspace/tests")
    findings, _ = lint(root, load_areas(root), config)
    assert [(f.kind, f.path) for f in findings] == []  # not tests/tests/…


GATED_MODULE = """\
import os

import pytest

RUN_SLOW = os.getenv("VLLM_RUN_SLOW")
QUICK = os.environ.get("VLLM_QUICK", "1")


@pytest.mark.skipif(not RUN_SLOW, reason="slow: set VLLM_RUN_SLOW")
def test_slow():
    pass


@pytest.mark.skipif(os.getenv("VLLM_SKIP_BIG"), reason="turned off by a flag")
def test_big():
    pass


@pytest.mark.skipif(not QUICK, reason="runs unless QUICK is emptied")
def test_quick():
    pass


@pytest.mark.skipif("HF_TOKEN" not in os.environ, reason="needs the agent's token")
def test_hub():
    pass
"""


def test_only_variables_that_turn_tests_on_are_gates(tmp_path: Path) -> None:
    steps = [{"label": "Models", "platforms": ["cpu"], "commands": ["pytest tests/models/test_gated.py"]}]
    root = project(tmp_path, steps, {"tests/models/test_gated.py": GATED_MODULE})
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    # The module-level gate is seen; a disabling flag, a default that runs, the agent's secret are not.
    assert [(f.kind, f.variable) for f in findings] == [("unset-gate", "VLLM_RUN_SLOW")]


def test_a_tree_exported_into_an_ignored_folder_of_another_repository_is_read(tmp_path: Path) -> None:
    from tests.conftest import git

    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".corpus/\n")
    steps = [{"label": "Compile", "platforms": ["cpu"], "commands": ["pytest tests/compile"]}]
    root = project(tmp_path / ".corpus" / "proj", steps, FILES)
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    # Read as git's (empty) list of the enclosing repository, every path would be missing.
    assert not [f for f in findings if f.kind == "missing-path"]
    assert sorted(f.path or "" for f in findings if f.kind == "unrun-test") == [
        "tests/distributed/test_events.py",
        "tests/distributed/test_same_node.py",
    ]
