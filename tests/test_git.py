"""Host git calls never run the checkout's code: hooks and fsmonitor are off, in repro's worktree too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.git import run_git
from harness.reports.report import RunReport
from harness.repro import worktree
from harness.run.run import git_state
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


def test_a_submodule_repository_a_step_planted_runs_nothing_at_the_hosts_git_status(tmp_path: Path) -> None:
    """A pull request commits a gitlink; its step makes the submodule's folder a repository whose
    config has a clean filter. Only the checkout's own .git is read-only in containers."""
    marker = tmp_path / "filter-ran"
    planted = tmp_path / "planted"
    planted.mkdir()
    git(planted, "init", "-q")
    (planted / "a.txt").write_text("a\n")
    (planted / ".gitattributes").write_text("* filter=x\n")
    git(planted, "add", "-A")
    git(planted, "commit", "-qm", "planted")
    script = tmp_path / "clean.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\ncat\n")
    script.chmod(0o755)
    with open(planted / ".git" / "config", "a") as config:
        config.write(f'[filter "x"]\n\tclean = {script}\n')
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "b.txt").write_text("b\n")
    git(root, "add", "b.txt")
    git(root, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},vendor/x")
    git(root, "commit", "-qm", "a gitlink")
    import shutil

    shutil.copytree(planted, root / "vendor" / "x")  # what the step leaves in the writable checkout
    (root / "vendor" / "x" / "a.txt").write_text("changed\n")  # stat differs: git would re-hash, filtering
    assert git_state(root)["commit"]
    run_git(root, "status")
    run_git(root, "diff", "--stat")
    assert not marker.exists()


def test_a_checkout_without_its_own_git_gets_a_read_only_empty_one_in_containers(tmp_path: Path) -> None:
    from harness.run.container.docker import prepare_state
    from harness.run.plan import state_mounts

    mono = tmp_path / "mono"
    (mono / "sub").mkdir(parents=True)
    git(mono, "init", "-q")
    (mono / "sub" / "t.txt").write_text("t\n")
    git(mono, "add", "-A")
    git(mono, "commit", "-qm", "mono")
    prepare_state(mono / "sub")
    mounts = {m.target: m for m in state_mounts(mono / "sub", "/workspace")}
    assert mounts["/workspace/.git"].read_only and (mono / "sub" / ".git").is_dir()
    assert git_state(mono / "sub")["commit"]  # git still finds the larger repository above it


def test_a_checkout_git_refuses_as_another_user_s_is_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """git refuses a repository another user owns (a CI agent's checkout, a copy made by root for
    another uid): the report has no commit, and the run says why and what to do instead of nothing."""
    if os.geteuid() != 0:
        pytest.skip("making a checkout another user's needs root")
    root, _ = planted_repository(tmp_path)
    for folder, _, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.lchown(name, 4321, 4321)
    env = {k: v for k, v in os.environ.items() if k not in ("SUDO_UID", "SUDO_GID")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "environ", env)
        state = git_state(root)
    assert state == {"commit": None, "dirty": None}
    said = capsys.readouterr().err
    assert "dubious ownership" in said and f"safe.directory {root}" in said and said.count("\n") == 1
