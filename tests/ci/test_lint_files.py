"""A commit read from git's objects lints exactly as its checkout would, without checking it out."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.ci.lint import lint
from harness.ci.lint.files import CheckoutFiles, CommitFiles
from harness.declare.config import load_config
from harness.declare.sources import load_areas
from tests.conftest import commit_tree, git

PYPROJECT = """\
[tool.gpuci]
declarations = [".buildkite/test_areas", ".buildkite/nightly"]
"""
AREA = """\
group: engine
platforms: [cpu]
steps:
- label: engine
  commands:
  - pytest -v tests/engine
  - bash tests/run_long.sh
"""
NIGHTLY = """\
group: nightly
platforms: [cpu]
steps:
- label: sweep
  commands:
  - pytest -v tests/sweep/test_sweep.py --model small
"""
GATED = (
    "import os\nimport pytest\n\n\n@pytest.mark.skipif(not os.getenv('RUN_BIG'), reason='big')\n"
    "def test_big():\n    pass\n"
)
SCRIPT = 'if [[ -n "${LONG:-}" ]]; then\n  pytest -v tests/long/test_long.py\nfi\n'
CONFTEST = "def pytest_addoption(parser):\n    parser.addoption('--model', default='x')\n"
BASE = {
    "pyproject.toml": PYPROJECT,
    ".buildkite/test_areas/engine.yaml": AREA,
    ".buildkite/nightly/sweep.yaml": NIGHTLY,
    "tests/conftest.py": CONFTEST,
    "tests/engine/test_core.py": "def test_a():\n    pass\n",
    "tests/engine/test_gated.py": GATED,
    "tests/long/test_long.py": "def test_l():\n    pass\n",
    "tests/run_long.sh": SCRIPT,
    "tests/sweep/test_sweep.py": "def test_s():\n    pass\n",
    "tests/other/test_unrun.py": "def test_u():\n    pass\n",
}


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def findings_at(root: Path, files=None) -> set[tuple[str, str, str | None, str | None]]:
    config = load_config(root)
    found, _ = lint(root, load_areas(root, config.declarations), config, files=files)
    return {(f.kind, f.file, f.path, f.variable) for f in found}


def test_a_commit_lints_as_its_checkout_does(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, BASE)
    commit_tree(repo, "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    # What a branch does after it: committed and uncommitted, in every kind of file the lint reads.
    (repo / "tests" / "conftest.py").write_text("")  # the --model option is gone
    (repo / "tests" / "engine" / "test_core.py").unlink()
    (repo / "tests" / "other" / "test_unrun.py").unlink()
    (repo / "tests" / "run_long.sh").write_text("pytest -v tests/long/test_long.py\n")  # the gate is gone
    write(repo, {"tests/engine/test_new.py": "def test_n():\n    pass\n", "pyproject.toml": "[tool.gpuci]\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    (repo / ".buildkite" / "nightly" / "sweep.yaml").unlink()  # uncommitted
    (repo / "tests" / "engine" / "test_gated.py").write_text("def test_big():\n    pass\n")

    checkout = tmp_path / "checkout"
    git(repo, "worktree", "add", "--detach", "-q", str(checkout), base)
    expected = findings_at(checkout)
    assert {kind for kind, *_ in expected} >= {"unrun-test", "unset-gate"}  # the base has findings to agree on

    at_base = CommitFiles(repo, base)
    assert at_base.names() == CheckoutFiles(checkout).names()
    assert at_base.read("tests/run_long.sh") == SCRIPT  # changed since: the commit's text
    assert at_base.read("tests/engine/test_core.py") == "def test_a():\n    pass\n"  # deleted since
    assert at_base.read("tests/engine/test_new.py") == "" and "tests/engine/test_new.py" not in at_base.names()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    at_base.write_settings(scratch)
    at_base.place_declared(scratch, load_config(scratch).declarations)
    assert findings_at(scratch, at_base) == expected
    assert not (scratch / "tests").exists()  # nothing but the settings and pipeline files was written


def test_a_crafted_commit_naming_dot_dot_writes_nothing_outside_the_scratch_folder(tmp_path: Path) -> None:
    """A tree can be made by hand with a `..` folder in it; its files are no files of the commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")

    def run(*args: str, data: str = "") -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    blob = run("hash-object", "-w", "--stdin", data="steps: []\n")
    inner = run("mktree", data=f"100644 blob {blob}\tevil.yaml\n")
    top = run("mktree", data=f"040000 tree {inner}\t..\n100644 blob {blob}\tok.yaml\n")
    commit = run("commit-tree", top, "-m", "crafted")
    at_commit = CommitFiles(repo, commit)
    assert at_commit.names() == ["ok.yaml"]
    scratch = tmp_path / "scratch" / "root"
    scratch.mkdir(parents=True)
    at_commit.place_declared(scratch, ("*",))
    assert (scratch / "ok.yaml").is_file() and not (tmp_path / "scratch" / "evil.yaml").exists()
