"""A warm lint replays the last run's findings only while nothing that run read has changed.

Replay is shown by planting a marker in the stored findings: a run that prints the marker replayed;
after any change to what the lint reads, the marker must be gone and the findings the real ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import commit_tree, git

AREA = """\
group: models
platforms: [cpu]
steps:
- label: models
  commands:
  - bash tests/run.sh
"""
TEST = "def test_a():\n    pass\n"
MARKER = "planted: a replayed finding"


def checkout(root: Path) -> Path:
    files = {
        ".buildkite/test_areas/models.yaml": AREA,
        "tests/run.sh": "pytest -v tests/test_run.py\n",
        "tests/test_run.py": TEST,
        "tests/test_unrun.py": TEST,
        "tests/conftest.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    commit_tree(root, "base")
    return root


def plant(cache: Path) -> None:
    """The stored run's findings replaced by one marker: printed only if the memo is replayed."""
    (memo,) = (cache / "lint-runs").glob("*.json")
    held = json.loads(memo.read_text())
    planted = {"kind": "unrun-test", "file": "x", "line": 0, "step": "", "message": MARKER, "path": "planted"}
    held["findings"] = [planted]
    memo.write_text(json.dumps(held))


def unrun(done) -> list[str]:  # type: ignore[no-untyped-def]
    assert done.returncode in (0, 1), done.stderr
    return sorted(f["path"] for f in json.loads(done.stdout) if f["kind"] == "unrun-test")


def messages(done) -> list[str]:  # type: ignore[no-untyped-def]
    return [f["message"] for f in json.loads(done.stdout)]


def test_an_unchanged_checkout_replays_and_any_change_to_what_it_read_runs_it_whole(
    tmp_path: Path, run_harness: Callable
) -> None:
    root, cache = checkout(tmp_path / "project"), tmp_path / "cache"

    def lint(*extra: str):  # type: ignore[no-untyped-def]
        return run_harness("lint", "--root", str(root), "--format", "json", *extra, GPUCI_CACHE_DIR=str(cache))

    first = lint()
    assert unrun(first) == ["tests/test_unrun.py"]
    assert "lint-runs" not in {p.name for p in root.iterdir()}  # kept in the cache folder, not the checkout
    plant(cache)
    assert messages(lint()) == [MARKER]  # nothing changed: replayed
    assert messages(lint("--no-cache")) != [MARKER]  # --no-cache never replays

    changes: list[tuple[str, Callable[[], None], list[str]]] = [
        # a script a step runs (read by the resolver) now runs the other test too
        ("script", lambda: (root / "tests/run.sh").write_text("pytest tests/test_run.py tests/test_unrun.py\n"), []),
        # a new file, untracked: git's file list changed
        ("new file", lambda: (root / "tests/test_new.py").write_text(TEST), ["tests/test_new.py"]),
        # an analysed test module no longer defines tests
        ("module", lambda: (root / "tests/test_new.py").write_text("x = 1\n"), []),
        # the declaration: the step runs nothing now
        ("declaration", lambda: (root / ".buildkite/test_areas/models.yaml").write_text(AREA.replace("bash", "echo")),
         ["tests/test_run.py", "tests/test_unrun.py"]),
        # pytest's settings: only tests/other is collected
        ("pytest.ini", lambda: (root / "pytest.ini").write_text("[pytest]\ntestpaths = tests/other\n"), []),
    ]  # fmt: skip
    for what, change, expected in changes:
        lint()  # stored for the current state
        plant(cache)
        change()
        done = lint()
        assert MARKER not in messages(done), f"replayed after a change to the {what}"
        assert unrun(done) == expected, what

    (root / "pytest.ini").unlink()
    lint()
    plant(cache)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "more")  # HEAD moved (the history that suggestions read)
    assert MARKER not in messages(lint())


@pytest.mark.parametrize("verbose", [False, True])
def test_a_replayed_run_says_the_same_warnings(tmp_path: Path, run_harness: Callable, verbose: bool) -> None:
    root, cache = checkout(tmp_path / "project"), tmp_path / "cache"
    area = root / ".buildkite/test_areas/models.yaml"
    area.write_text(AREA + "  matrix: [a, b]\n")  # a construct gpuci names but does not honour
    git(root, "commit", "-qam", "matrix")
    flags = ["--verbose"] if verbose else []
    runs = [run_harness("lint", "--root", str(root), *flags, GPUCI_CACHE_DIR=str(cache)) for _ in range(2)]
    assert "'matrix' is not expanded" in runs[0].stderr
    assert runs[1].stderr == runs[0].stderr and runs[1].stdout == runs[0].stdout
    assert runs[1].returncode == runs[0].returncode == 1


def test_an_exported_tree_is_not_memoised(tmp_path: Path, run_harness: Callable) -> None:
    root, cache = tmp_path / "export", tmp_path / "cache"
    (root / ".buildkite/test_areas").mkdir(parents=True)
    (root / ".buildkite/test_areas/models.yaml").write_text(AREA)
    (root / "tests").mkdir()
    (root / "tests/test_unrun.py").write_text(TEST)
    (root / ".git").mkdir()  # git lists nothing here: the folder is walked, with no cheap list to compare
    done = run_harness("lint", "--root", str(root), "--format", "json", GPUCI_CACHE_DIR=str(cache))
    assert unrun(done) == ["tests/test_unrun.py"]
    assert not (cache / "lint-runs").exists()


def test_since_replays_the_commits_findings_and_runs_a_changed_checkout(tmp_path: Path, run_harness: Callable) -> None:
    root, cache = checkout(tmp_path / "project"), tmp_path / "cache"

    def since():  # type: ignore[no-untyped-def]
        done = run_harness("lint", "--root", str(root), "--since", "HEAD", GPUCI_CACHE_DIR=str(cache))
        assert done.returncode in (0, 1), done.stderr
        return done.stdout

    assert since().endswith("0 introduced, 0 resolved\n")
    (base,) = [m for m in (cache / "lint-runs").glob("*.json") if "commit_findings" in json.loads(m.read_text())]
    held = json.loads(base.read_text())
    assert [f["path"] for f in held["commit_findings"]] == ["tests/test_unrun.py"]
    held["commit_findings"] = []  # the commit's findings, planted: it had none, so its unrun test is new
    base.write_text(json.dumps(held))
    (root / "tests/test_new.py").write_text(TEST)  # the checkout changed: run whole, the commit replayed
    out = since()
    assert "tests/test_unrun.py" in out and "tests/test_new.py" in out and "2 introduced, 0 resolved" in out
    out = run_harness("lint", "--root", str(root), "--since", "HEAD", "--no-cache", GPUCI_CACHE_DIR=str(cache)).stdout
    assert out.endswith("1 introduced, 0 resolved\n")  # --no-cache: the commit linted again
