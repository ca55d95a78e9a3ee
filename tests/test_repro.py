"""Reproduce a run from its report: same commit (a worktree), same image, same arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git

AREA = """\
platforms: [cpu]
steps:
  - label: check
    commands: ["echo commit=$(cat marker.txt) token=${API_TOKEN:-none}; python3 -c 'import sys; print(sys.argv)'"]
"""


@pytest.fixture
def repo(make_project) -> Path:
    root = make_project(AREA, name="rep")
    (root / "marker.txt").write_text("first\n")
    (root / ".gitignore").write_text(".gpuci/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


def original_report(repo: Path, run_harness) -> Path:
    done = run_harness(
        "run", "--platform", "cpu", "--area", "rep", "--root", str(repo), "--env", "API_TOKEN", API_TOKEN="s3cret-token"
    )
    assert done.returncode == 0, done.stderr
    assert "token=s3cret-token" not in done.stdout  # redacted in the log
    return (repo / ".gpuci" / "runs" / "latest" / "report.json").resolve()


def test_a_report_reproduces_at_its_commit_in_its_image(repo, run_harness, cpu_image) -> None:
    report = original_report(repo, run_harness)
    (repo / "marker.txt").write_text("second\n")  # the checkout moved on since the nightly
    git(repo, "commit", "-qam", "second")
    done = run_harness("repro", str(report), "--root", str(repo), "--env", "API_TOKEN", API_TOKEN="s3cret-token")
    assert done.returncode == 0, done.stderr
    assert "commit=first" in done.stdout  # ran at the recorded commit, not at HEAD
    original = json.loads(report.read_text())
    (mine,) = list((repo / ".gpuci" / "runs").glob("repro-*/report.json"))
    again = json.loads(mine.read_text())
    assert again["repro_of"]["run_id"] == original["run_id"]
    assert again["image"]["content_hash"] == original["image"]["content_hash"]
    assert again["git"]["commit"] == original["git"]["commit"]
    assert "s3cret-token" not in mine.read_text()
    # `latest` is the newest run of this checkout: the repro, not the original.
    assert (repo / ".gpuci" / "runs" / "latest").resolve() == mine.parent.resolve()


def test_a_run_on_a_dirty_tree_is_refused_unless_allowed(repo, run_harness, cpu_image, tmp_path) -> None:
    report = json.loads(original_report(repo, run_harness).read_text())
    report["git"]["dirty"] = True
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    done = run_harness("repro", str(path), "--root", str(repo))
    assert done.returncode == 2 and "dirty tree" in done.stderr and "--allow-dirty" in done.stderr
    assert run_harness("repro", str(path), "--root", str(repo), "--allow-dirty").returncode == 0


def test_a_rebuild_from_a_recipe_that_hashes_differently_is_refused(repo, run_harness, cpu_image, tmp_path) -> None:
    report = json.loads(original_report(repo, run_harness).read_text())
    report["image"]["content_hash"] = "0" * 64
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    done = run_harness("repro", str(path), "--root", str(repo), "--rebuild")
    assert done.returncode == 2 and "would not be the same image" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_commit_says_to_fetch_it(repo, run_harness, cpu_image, tmp_path) -> None:
    report = json.loads(original_report(repo, run_harness).read_text())
    report["git"]["commit"] = "f" * 40
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    done = run_harness("repro", str(path), "--root", str(repo))
    assert done.returncode == 2 and "git fetch" in done.stderr
