"""Host git calls never run the checkout's code: hooks and fsmonitor are off, in repro's worktree too."""

from __future__ import annotations

from pathlib import Path

from harness.git import run_git
from harness.reports.report import RunReport, git_state
from harness.repro import worktree
from tests.conftest import git


def planted_repository(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "a.txt").write_text("a\n")
    git(root, "add", "a.txt")
    git(root, "commit", "-qm", "base")
    marks = tmp_path / "marks"
    marks.mkdir()
    # What a workload with a writable .git would have left: a command for fsmonitor, and a hook.
    with open(root / ".git" / "config", "a") as config:
        config.write(f"[core]\n\tfsmonitor = touch {marks}/fsmonitor-ran; false\n")
    hook = root / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marks}/hook-ran\n")
    hook.chmod(0o755)
    return root, marks


def test_status_runs_no_fsmonitor_command(tmp_path: Path) -> None:
    root, marks = planted_repository(tmp_path)
    assert git_state(root)["commit"] is not None
    assert run_git(root, "status", "--porcelain").returncode == 0
    assert list(marks.iterdir()) == []


def test_repros_worktree_runs_no_hook(tmp_path: Path) -> None:
    root, marks = planted_repository(tmp_path)
    commit = git(root, "rev-parse", "HEAD").strip()
    tree = worktree(root, RunReport("r1", git={"commit": commit, "dirty": False}), allow_dirty=False)
    assert (tree / "a.txt").read_text() == "a\n"
    assert list(marks.iterdir()) == []
