"""Reproduce a run from its report: same commit (a worktree), same image, same arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import commit_tree, git

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
    commit_tree(root, "first")
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


def _forged(repo: Path, **changes: object) -> dict:
    """A report as gpuci writes one for `repo`'s HEAD (no run needed to refuse it), then edited."""
    commit = git(repo, "rev-parse", "HEAD").strip()
    report = {
        "run_id": "20260101-000000-abcdef",
        "area": "rep",
        "step": "check",
        "platform": "cpu",
        "mode": "container",
        "git": {"commit": commit, "dirty": False},
        "image": {"id": "sha256:" + "a" * 64, "content_hash": "b" * 64},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            report[section][field] = value
        else:
            report[section] = value
    return report


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("run_id", "../../../escaped"),
        ("run_id", "/tmp/escaped"),
        ("run_id", ".."),
        ("run_id", "x\x1b]52;c;ZXZpbA==\x07"),
        ("area", "../rep"),
        ("platform", "../cpu"),
        ("mode", "hostile"),
        ("git__commit", "--upload-pack=touch PWNED"),
        ("git__commit", "HEAD"),
        ("image__id", "sha256:../../x"),
        ("image__repo_digest", "evil.example.com/x:latest"),
    ],
)
def test_a_report_whose_fields_gpuci_never_writes_is_refused_before_anything_runs(
    repo, run_harness, tmp_path, field, value
) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_forged(repo, **{field: value})))
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run_harness("repro", str(path), "--root", str(repo), timeout=120)
    assert done.returncode == 2, done.stderr
    assert field.replace("__", ".") in done.stderr and "Nothing was run" in done.stderr
    assert "Traceback" not in done.stderr and "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert not (repo / ".gpuci" / "repro").exists()  # no worktree, anywhere
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (repo.parent / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert git(repo, "worktree", "list").count("\n") == 1


def test_a_report_too_large_or_too_deep_is_one_line_and_quick(repo, run_harness, tmp_path) -> None:
    import time

    deep = tmp_path / "deep.json"
    deep.write_text('{"run_id": ' + "[" * 100000 + "]" * 100000 + "}")
    big = tmp_path / "big.json"
    with big.open("wb") as file:
        file.truncate(40 * 1024 * 1024)  # sparse: 40 MiB of NULs
    for path, said in ((deep, "nested deeper"), (big, "larger than")):
        started = time.monotonic()
        done = run_harness("repro", str(path), "--root", str(repo), timeout=60)
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
        assert time.monotonic() - started < 5  # a whole gpuci process, on a busy machine


WHERE = """\
platforms: [cpu]
steps:
  - label: where
    commands: ["echo WHERE=$PWD"]
"""


def test_a_report_saying_host_still_runs_in_its_container(make_project, run_harness, cpu_image, tmp_path) -> None:
    root = make_project(WHERE, name="where")
    (root / ".gitignore").write_text(".gpuci/\n")
    commit_tree(root, "first")
    done = run_harness("run", "--platform", "cpu", "--area", "where", "--root", str(root))
    assert done.returncode == 0, done.stderr
    original = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    assert "WHERE=/workspace" in done.stdout  # in the container, the checkout is /workspace
    original["mode"] = "host"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(original))
    again = run_harness("repro", str(path), "--root", str(root))
    assert again.returncode == 0, again.stderr
    assert "WHERE=/workspace" in again.stdout and "--no-container" in again.stderr
    mine = json.loads(next((root / ".gpuci" / "runs").glob("repro-*/report.json")).read_text())
    assert mine["mode"] == "container"
    # Only the user's own flag runs it here.
    here = run_harness("repro", str(path), "--root", str(root), "--no-container")
    assert here.returncode == 0, here.stderr
    assert f"WHERE={root}/.gpuci/repro/" in here.stdout


SETTINGS_AREA = """\
platforms: [cpu]
steps:
  - label: check
    num_gpus: 0
    commands: ["echo token=${API_TOKEN:-none} grace=$GPUCI_GRACE_S timeout=${GPUCI_STEP_TIMEOUT_S:-none}"]
"""
RUN_SETTINGS = """\
[tool.gpuci]
memory = "512m"
cpus = 1
pids_limit = 300
network = "none"
grace = 2.5
timeout = 120
secrets = ["API_TOKEN"]
"""


def test_a_repro_runs_with_every_run_setting_of_its_commit(make_project, run_harness, cpu_image, tmp_path) -> None:
    """Limits, network, grace, timeout and secrets reach a reproduction through the path `run` takes
    (it once took only the workspace and mounts: a repro ran without the project's limits)."""
    from harness.run.secrets import SECRETS_MOUNT

    root = make_project(SETTINGS_AREA, name="settings")
    (root / "pyproject.toml").write_text(RUN_SETTINGS)
    (root / ".gitignore").write_text(".gpuci/\n")
    policy = tmp_path / "policy.toml"
    policy.write_text('env = ["API_TOKEN"]\n')
    commit_tree(root, "first")
    host = {"GPUCI_POLICY": str(policy), "API_TOKEN": "s3cret-token"}
    done = run_harness("run", "--platform", "cpu", "--area", "settings", "--root", str(root), **host)
    assert done.returncode == 0, done.stderr
    report = (root / ".gpuci" / "runs" / "latest" / "report.json").resolve()
    (root / "pyproject.toml").write_text("[tool.gpuci]\n")  # HEAD moved on: the repro takes the commit's
    git(root, "commit", "-qam", "second")
    again = run_harness("repro", str(report), "--root", str(root), **host)
    assert again.returncode == 0, again.stderr
    assert "grace=2.5 timeout=120" in again.stdout and "token=none" not in again.stdout  # the secret arrived
    assert "s3cret-token" not in again.stdout
    original = json.loads(report.read_text())["spec"]
    mine = json.loads(next((root / ".gpuci" / "runs").glob("repro-*/report.json")).read_text())["spec"]
    wanted = {"memory": "512m", "cpus": 1.0, "pids": 300, "network": "none"}
    assert original["limits"] == mine["limits"] == wanted and mine["network_mode"] == "none"
    assert mine["env"]["GPUCI_GRACE_S"] == original["env"]["GPUCI_GRACE_S"] == "2.5"
    assert SECRETS_MOUNT in [m["target"] for m in mine["mounts"]]  # by reference, through the secrets file
