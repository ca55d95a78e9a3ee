"""`lint --since REV`: only what a change did to CI coverage, so a pull request sees its own effect.

The lint runs on the tree at REV (read from git's objects, nothing checked out: see `files`) and on
the checkout as it is, each with its own declarations and `[tool.gpuci]`; a finding is the same one in both when
its kind, file, step, path and variable agree (lines move), and for an unset gate what it holds
back: more tests behind a gate that was already unset is a new loss. An unrun test is the same one
when its tests are (their names): a module moved while unrun is neither introduced nor resolved.
New findings are what the change introduced; findings gone are what it resolved.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from harness.ci.lint.files import CommitFiles, Files
from harness.ci.lint.findings import Finding
from harness.errors import UsageError
from harness.git import run_git

Lint = Callable[[Path, Files | None], list[Finding]]  # a root, and its files where not that folder's


def key(finding: Finding) -> tuple[object, ...]:
    if finding.kind == "unrun-test" and finding.holds:
        return (finding.kind, finding.holds)  # by its tests: a module moved while unrun is the same finding
    return (finding.kind, finding.file, finding.step, finding.path, finding.variable, finding.holds)


def compare(before: list[Finding], after: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(introduced, resolved), matched one to one: two unrun modules with the same tests are two."""
    return _unmatched(after, before), _unmatched(before, after)


def _unmatched(findings: list[Finding], others: list[Finding]) -> list[Finding]:
    left = Counter(key(f) for f in others)
    unmatched = []
    for finding in findings:
        if left[key(finding)] > 0:
            left[key(finding)] -= 1
        else:
            unmatched.append(finding)
    return unmatched


def lint_since(root: Path, rev: str, run_lint: Lint) -> tuple[list[Finding], list[Finding]]:
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if commit.returncode != 0:
        raise UsageError(f"--since {rev!r} names no commit here; fetch it (git fetch origin {rev}) or give a SHA.")
    at_commit = CommitFiles(root, commit.stdout.strip())  # read from git: nothing is checked out
    scratch = Path(tempfile.mkdtemp(prefix="gpuci-lint-since-"))
    try:
        tree = scratch / root.name  # stands for the checkout at REV: its settings and declarations
        tree.mkdir()
        at_commit.write_settings(tree)
        before = run_lint(tree, at_commit)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return compare(before, run_lint(root, None))


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_git(root, *args)
