"""`lint --since REV`: what the change did to CI coverage, not what was already broken."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import commit_tree, git

AREA = """\
group: engine
platforms: [cpu]
steps:
- label: engine
  commands:
  - pytest -v tests/engine/test_core.py
  - pytest -v tests/engine/test_gone.py
"""


def test_only_what_the_change_introduced_is_reported(tmp_path: Path, run_harness) -> None:
    (tmp_path / "tests" / "engine").mkdir(parents=True)
    (tmp_path / "tests" / "engine" / "test_core.py").write_text("def test_a():\n    pass\n")
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "engine.yaml").write_text(AREA)  # test_gone.py is already missing: an old finding
    commit_tree(tmp_path, "base")
    # The change: a refactor moves the test one folder down and forgets the step.
    (tmp_path / "tests" / "engine" / "core").mkdir()
    (tmp_path / "tests" / "engine" / "test_core.py").rename(tmp_path / "tests" / "engine" / "core" / "test_core.py")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "move")
    whole = run_harness("lint", "--root", str(tmp_path), "--format", "json")
    assert {f["path"] for f in json.loads(whole.stdout)} >= {"tests/engine/test_gone.py"}
    since = run_harness("lint", "--root", str(tmp_path), "--since", "HEAD~1", "--format", "json")
    assert since.returncode == 1, since.stderr
    introduced = json.loads(since.stdout)
    assert {(f["kind"], f["path"]) for f in introduced} == {
        ("missing-path", "tests/engine/test_core.py"),
        ("unrun-test", "tests/engine/core/test_core.py"),
    }
    text = run_harness("lint", "--root", str(tmp_path), "--since", "HEAD~1")
    assert "2 introduced, 0 resolved" in text.stdout and "test_gone" not in text.stdout
    clean = run_harness("lint", "--root", str(tmp_path), "--since", "HEAD")
    assert clean.returncode == 0 and "0 introduced" in clean.stdout
    bad = run_harness("lint", "--root", str(tmp_path), "--since", "no-such-branch")
    assert bad.returncode == 2 and "names no commit" in bad.stderr
    listed = subprocess.run(["git", "-C", str(tmp_path), "worktree", "list"], capture_output=True, text=True)
    assert len(listed.stdout.splitlines()) == 1  # the comparison's worktree is gone


SWEEP = """\
#!/bin/bash
MODELS="llama"
if [[ -n "${{LONG_CONTEXT:-}}" ]]; then
  MODELS="{gated}"
fi
for m in $MODELS; do pytest -v "tests/models/test_$m.py"; done
"""


def test_a_config_moved_behind_a_gate_that_was_already_unset_is_a_new_loss(tmp_path: Path, run_harness) -> None:
    (tmp_path / "tests" / "models").mkdir(parents=True)
    for name in ("llama", "qwen", "gemma"):
        (tmp_path / "tests" / "models" / f"test_{name}.py").write_text("def test_x():\n    pass\n")
    (tmp_path / "tests" / "sweep.sh").write_text(SWEEP.format(gated="qwen"))
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "models.yaml").write_text(
        "group: models\nplatforms: [cpu]\nsteps:\n- label: models\n  commands:\n"
        "  - bash tests/sweep.sh\n  - pytest tests/models/test_gemma.py\n"
    )
    commit_tree(tmp_path, "base: LONG_CONTEXT is already a gate no step sets")
    unchanged = run_harness("lint", "--root", str(tmp_path), "--since", "HEAD", "--format", "json")
    assert json.loads(unchanged.stdout) == []  # the old gate alone is not the change's doing
    # The change: gemma's config moves behind the same gate, and its own line goes.
    (tmp_path / "tests" / "sweep.sh").write_text(SWEEP.format(gated="qwen gemma"))
    (areas / "models.yaml").write_text(
        "group: models\nplatforms: [cpu]\nsteps:\n- label: models\n  commands:\n  - bash tests/sweep.sh\n"
    )
    git(tmp_path, "commit", "-qam", "move gemma into the long-context sweep")
    since = run_harness("lint", "--root", str(tmp_path), "--since", "HEAD~1", "--format", "json")
    introduced = [(f["kind"], f["variable"]) for f in json.loads(since.stdout)]
    assert introduced == [("unset-gate", "LONG_CONTEXT")]


def test_the_pre_commit_hook_reports_what_the_uncommitted_change_loses(tmp_path: Path, run_harness) -> None:
    import yaml

    from tests.conftest import ROOT

    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "gpuci-lint" and hook["pass_filenames"] is False
    program, *arguments = hook["entry"].split()
    assert program == "gpuci" and arguments == ["lint", "--since", "HEAD"]
    (tmp_path / "tests" / "engine").mkdir(parents=True)
    (tmp_path / "tests" / "engine" / "test_core.py").write_text("def test_a():\n    pass\n")
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "engine.yaml").write_text(AREA.replace("  - pytest -v tests/engine/test_gone.py\n", ""))
    commit_tree(tmp_path, "base")
    (tmp_path / "tests" / "engine" / "test_core.py").rename(tmp_path / "tests" / "engine" / "test_kore.py")
    git(tmp_path, "add", "-A")  # staged, as pre-commit runs hooks on what is about to be committed
    done = run_harness(*arguments, "--root", str(tmp_path))  # what the hook runs, before the commit
    assert done.returncode == 1 and "2 introduced" in done.stdout, done.stdout + done.stderr


def test_a_test_moved_while_unrun_before_and_after_is_neither_introduced_nor_resolved(
    tmp_path: Path, run_harness
) -> None:
    (tmp_path / "tests" / "engine").mkdir(parents=True)
    (tmp_path / "tests" / "engine" / "test_core.py").write_text("def test_a():\n    pass\n")
    (tmp_path / "tests" / "moe").mkdir()
    (tmp_path / "tests" / "moe" / "test_moe.py").write_text("def test_experts():\n    pass\n")  # unrun already
    areas = tmp_path / ".buildkite" / "test_areas"
    areas.mkdir(parents=True)
    (areas / "engine.yaml").write_text(AREA.replace("  - pytest -v tests/engine/test_gone.py\n", ""))
    commit_tree(tmp_path, "base")
    (tmp_path / "tests" / "moe" / "fused").mkdir()
    git(tmp_path, "mv", "tests/moe/test_moe.py", "tests/moe/fused/test_fused_moe.py")
    git(tmp_path, "commit", "-qm", "move the unrun test")
    since = run_harness("lint", "--root", str(tmp_path), "--since", "HEAD~1")
    assert since.returncode == 0 and "0 introduced, 0 resolved" in since.stdout, since.stdout
    # A second unrun module with new tests is a new loss all the same.
    (tmp_path / "tests" / "moe" / "test_router.py").write_text("def test_route():\n    pass\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "an unrun test")
    since = run_harness("lint", "--root", str(tmp_path), "--since", "HEAD~2", "--format", "json")
    assert [(f["kind"], f["path"]) for f in json.loads(since.stdout)] == [("unrun-test", "tests/moe/test_router.py")]
