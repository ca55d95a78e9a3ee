"""The CI-coverage lint finds each incident it exists for, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.ci.lint import lint
from harness.declare.config import ProjectConfig
from harness.declare.sources import load_areas
from tests.conftest import commit_tree, git

GATED_SCRIPT = """#!/bin/bash
set -e
MODELS="llama mistral"
if [[ -n "${FULL:-}" ]]; then
    MODELS="$MODELS qwen"
elif [[ -n "${SW_ATTN:-}" ]]; then
    MODELS="gemma2"   # moved here by a refactor: only runs when SW_ATTN is set
fi
for m in $MODELS; do pytest -v "tests/models/test_$m.py"; done
"""


def project(tmp_path: Path, steps: list[dict], files: dict[str, str], pytest_ini: str = "") -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / ".buildkite" / "test_areas").mkdir(parents=True, exist_ok=True)
    (tmp_path / ".buildkite" / "test_areas" / "ci.yaml").write_text(yaml.safe_dump({"group": "CI", "steps": steps}))
    if pytest_ini:
        (tmp_path / "pytest.ini").write_text(pytest_ini)
    return tmp_path


def run(root: Path, config: ProjectConfig | None = None) -> list[tuple[str, str | None]]:
    findings, _ = lint(root, load_areas(root), config or ProjectConfig())
    return [(f.kind, f.variable or f.path) for f in findings]


TEST = "def test_it(): pass\n"
BASE_FILES = {
    "vllm/config.py": "",
    "vllm/engine/core.py": "",
    "tests/engine/test_core.py": "def test_x(): pass\n",
    "tests/models/test_llama.py": TEST,
    "tests/models/test_mistral.py": TEST,
    "tests/models/test_qwen.py": TEST,
    "tests/models/test_gemma2.py": TEST,
    "tests/run_models.sh": GATED_SCRIPT,
}
BASE_STEPS = [
    {
        "label": "Engine",
        "commands": ["pytest -v -s tests/engine"],
        "source_file_dependencies": ["vllm/engine"],
    },
    {
        "label": "Models",
        "commands": ["bash tests/run_models.sh"],
        "env": {"FULL": "1", "SW_ATTN": "1"},
        "source_file_dependencies": ["vllm/config.py", "tests/models"],
    },
]


def test_a_clean_project_is_clean(tmp_path: Path) -> None:
    assert run(project(tmp_path, BASE_STEPS, BASE_FILES)) == []


def test_a_moved_test_file_is_a_missing_path_with_its_new_home(tmp_path: Path) -> None:
    steps = [{**BASE_STEPS[0], "commands": ["pytest -v tests/engine/test_core.py::test_x"]}, BASE_STEPS[1]]
    root = project(tmp_path, steps, BASE_FILES)
    commit_tree(root, "base")
    (root / "tests/engine/v1").mkdir()
    git(root, "mv", "tests/engine/test_core.py", "tests/engine/v1/test_core.py")  # git sees the rename
    git(root, "commit", "-qm", "move")
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    assert [(f.kind, f.path) for f in findings] == [
        ("missing-path", "tests/engine/test_core.py"),
        ("unrun-test", "tests/engine/v1/test_core.py"),  # and, moved, it runs nowhere
    ]
    assert findings[0].suggestion == "moved to tests/engine/v1/test_core.py?"
    assert findings[0].file == ".buildkite/test_areas/ci.yaml" and findings[0].line == 3  # the step's line


def test_a_suggestion_needs_the_history_and_a_test_path_is_only_suggested_for_a_test_path(tmp_path: Path) -> None:
    files = {
        **BASE_FILES,
        "tests/models/moe/test_moe.py": "def test_experts(): pass\n",
        "tests/models/fusers/test_moe.py": "import torch\n\ndef test_fuse_something_else(): assert torch\n",
        "vllm/kv_connector/base.py": "",
        "tests/kv_connector/test_base.py": TEST,
    }
    steps = [
        *BASE_STEPS,
        {
            "label": "MoE",
            "commands": ["pytest tests/models/moe/test_moe.py", "pytest tests/models/fusers tests/kv_connector"],
            "source_file_dependencies": ["vllm/kv_connector", "tests/models"],
        },
    ]
    root = project(tmp_path, steps, files)
    commit_tree(root, "base")
    # A test renamed: a same-named unrelated test elsewhere is no home for it.
    git(root, "mv", "tests/models/moe/test_moe.py", "tests/models/moe/sub_test_moe.py")
    # A source folder moved far away, where only a test folder shares its name.
    (root / "vllm/distributed").mkdir()
    git(root, "mv", "vllm/kv_connector", "vllm/distributed/kv_transfer")
    git(root, "commit", "-qm", "refactor")
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    by_path = {f.path: f for f in findings}
    assert by_path["tests/models/moe/test_moe.py"].kind == "missing-path"
    assert by_path["tests/models/moe/test_moe.py"].suggestion == "moved to tests/models/moe/sub_test_moe.py?"
    dead = by_path["vllm/kv_connector"]
    assert dead.kind == "dead-dependency" and dead.suggestion == "moved to vllm/distributed/kv_transfer?"
    assert "still triggered by its other entries ('tests/models')" in dead.message
    # Without history (an exported tree), no guess from a shared name.
    (root / ".git").rename(root / "git-was-here")
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    assert [f.suggestion for f in findings if f.kind in ("missing-path", "dead-dependency")] == [None, None]


def test_a_config_moved_behind_an_unset_variable_is_an_unset_gate(tmp_path: Path) -> None:
    steps = [BASE_STEPS[0], {**BASE_STEPS[1], "env": {"FULL": "1"}}]  # nobody sets SW_ATTN any more
    assert run(project(tmp_path, steps, BASE_FILES)) == [("unset-gate", "SW_ATTN")]


def test_a_folder_no_step_reaches_is_unrun(tmp_path: Path) -> None:
    files = {**BASE_FILES, "tests/spec_decode/test_ngram.py": TEST, "tests/spec_decode/test_eagle.py": TEST}
    assert run(project(tmp_path, BASE_STEPS, files)) == [
        ("unrun-test", "tests/spec_decode/test_eagle.py"),
        ("unrun-test", "tests/spec_decode/test_ngram.py"),
    ]


def test_a_dependency_written_without_its_extension_is_dead(tmp_path: Path) -> None:
    steps = [BASE_STEPS[0], {**BASE_STEPS[1], "source_file_dependencies": ["vllm/config", "tests/models"]}]
    root = project(tmp_path, steps, BASE_FILES)
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    assert [(f.kind, f.path) for f in findings] == [("dead-dependency", "vllm/config")]
    assert findings[0].suggestion == "did you mean 'vllm/config.py' (with its extension)?"


def test_commands_resolve_as_a_shell_would(tmp_path: Path) -> None:
    files = {
        **BASE_FILES,
        "tests/kernels/test_attn.py": TEST,
        "tests/kernels/test_moe.py": TEST,
        "tests/kernels/slow/test_big.py": TEST,
        "tests/lora/test_a.py": (
            "import os, pytest\npytestmark = pytest.mark.skipif(not os.getenv('LORA_RUN'), reason='x')\n"
        ),
        "tests/tools/check.py": "",
    }
    steps = [
        *BASE_STEPS,
        {
            "label": "Kernels",
            "working_dir": "/vllm-workspace/tests",
            "commands": [
                "cd kernels && python -m pytest -k 'not big' --ignore=slow .",
                "find slow -name 'test_*.py' | xargs pytest -x",
            ],
        },
        {
            "label": "LoRA",
            "commands": ["export LORA_RUN=1", "pytest tests/lora", "python tests/tools/check.py"],
        },
    ]
    config = ProjectConfig(workspace="/vllm-workspace")
    assert run(project(tmp_path, steps, files), config) == []
    steps[-1]["commands"] = ["pytest tests/lora"]  # the module's skip gate is now never opened
    assert run(project(tmp_path, steps, files), config) == [("unset-gate", "LORA_RUN")]


def test_pytest_config_decides_what_counts_as_a_test(tmp_path: Path) -> None:
    files = {**BASE_FILES, "tests/legacy/test_old.py": TEST, "tests/helpers_test.py": TEST}
    ini = "[pytest]\ntestpaths = tests\nnorecursedirs = legacy\npython_files = test_*.py\n"
    assert run(project(tmp_path, BASE_STEPS, files, ini)) == []


def test_the_cli_prints_json_and_honours_the_allow_list(tmp_path: Path, run_harness) -> None:
    files = {**BASE_FILES, "tests/spec_decode/test_ngram.py": TEST}
    root = project(tmp_path, BASE_STEPS, files)
    done = run_harness("lint", "--root", str(root), "--format", "json")
    assert done.returncode == 1
    (finding,) = json.loads(done.stdout)
    assert {"kind", "file", "line", "step", "path", "variable", "message"} <= set(finding)
    (root / ".buildkite" / "gpuci-lint-allow.yaml").write_text(
        "- kind: unrun-test\n  path: tests/spec_decode\n  reason: runs in the nightly spec-decode pipeline\n"
    )
    done = run_harness("lint", "--root", str(root))
    assert done.returncode == 0 and "clean (1 finding(s) accepted" in done.stdout


@pytest.mark.parametrize("allow", ["- kind: unrun-test\n", "- {kind: typo, reason: x}\n"])
def test_an_allow_entry_without_a_reason_or_kind_is_refused(tmp_path: Path, run_harness, allow: str) -> None:
    root = project(tmp_path, BASE_STEPS, BASE_FILES)
    (root / ".buildkite" / "gpuci-lint-allow.yaml").write_text(allow)
    done = run_harness("lint", "--root", str(root))
    assert done.returncode == 2 and "reason" in done.stderr and "Traceback" not in done.stderr


def test_this_repository_lints_clean(run_harness) -> None:
    done = run_harness("lint")
    assert done.returncode == 0, done.stdout


def test_warnings_are_one_line_per_kind_unless_verbose(run_harness, tmp_path) -> None:
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    steps = "".join(f"  - label: same\n    commands: [pytest t{i}.py]\n" for i in range(5))
    (areas / "amd.yaml").write_text(f"steps:\n{steps}  - wait\n")
    quiet = run_harness("lint", "--root", str(tmp_path))
    kinds = [line for line in quiet.stderr.splitlines() if line.startswith("gpuci: warning:")]
    assert len(kinds) == 2, quiet.stderr  # the repeated label (4 times) and the wait step
    assert any(line.startswith("gpuci: warning: 4× ") and "--verbose lists them" in line for line in kinds)
    loud = run_harness("lint", "--root", str(tmp_path), "--verbose")
    assert len([line for line in loud.stderr.splitlines() if line.startswith("gpuci: warning:")]) == 5


def test_a_file_name_with_escape_sequences_prints_inert() -> None:
    from harness.ci.lint.findings import Finding, as_text

    hostile = "tests/test_\x1b]0;PWN\x07\x1b[2J\rgpuci: clean.py"
    text = as_text([Finding("unrun-test", hostile, 0, "", "no step runs it", path=hostile)], 0)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "\\x1b" in text


def test_recipe_files_linked_out_of_the_checkout_are_refused(tmp_path) -> None:
    import shutil

    import pytest

    from harness.errors import UsageError
    from harness.images.recipe import recipe_for
    from tests.conftest import ROOT

    shutil.copytree(ROOT / "containers", tmp_path / "containers")
    secret = tmp_path.parent / f"{tmp_path.name}-host-file.txt"
    secret.write_text("line1-SECRET\n")
    (tmp_path / "containers" / "requirements.txt").unlink()
    (tmp_path / "containers" / "requirements.txt").symlink_to(secret)
    with pytest.raises(UsageError, match="link out of the checkout"):
        recipe_for(tmp_path, "cpu")


def test_a_clean_lint_names_the_allow_file_only_where_it_accepted_something() -> None:
    from harness.ci.lint import as_text
    from harness.ci.lint.findings import ALLOW_FILE

    assert as_text([], 0) == "gpuci lint: clean\n"  # the file may not exist: never named for nothing
    assert as_text([], 2) == f"gpuci lint: clean (2 finding(s) accepted by {ALLOW_FILE})\n"
