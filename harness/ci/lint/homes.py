"""Where a path a step or a dependency names went: only where the project's history says so.

A file of the same name elsewhere is no evidence (a `test_moe.py` renamed `sub_test_moe.py` is not
the unrelated `fusers/test_moe.py`). A suggestion is made when git's rename detection, in the commit
that removed the path, says where it went, or when a file of the same name now has much of the text
the path had before it was removed. A test path is only ever suggested for a test path, a source
path only for a source path. Without history (an exported tree) nothing is suggested.

All missing paths of a lint are looked up together (one `git log`, one `git show` per removing
commit), and the answers are kept in the lint's cache under the commit's id: a warm run asks git
only for the commit's id.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness.ci.lint.cache import AnalysisCache
from harness.ci.lint.findings import Finding
from harness.ci.lint.tree import Tree
from harness.git import run_git

PENDING = "\0home"  # a finding's suggestion until `fill` looks its path up
SIMILAR = 0.6  # SequenceMatcher ratio above which a same-named file holds the removed one's text
MAX_TEXT = 200_000  # a removed file's text read for comparison, at most
MAX_COMMITS = 40  # removing commits looked at, at most
TEST_PATH = re.compile(r"(^|/)(tests?|testing)(/|$)|(^|/)(test_[^/]*|[^/]*_test\.py|conftest\.py)$")


def is_test_path(path: str) -> bool:
    return bool(TEST_PATH.search(path))


class Homes:
    """Suggestions for missing paths of one tree, from the history of `history` = (repo, rev)."""

    def __init__(
        self, tree: Tree, history: tuple[Path, str] | None, read: Callable[[str], str], cache: AnalysisCache
    ) -> None:
        self.tree, self.history, self.read, self.cache = tree, history, read, cache

    def fill(self, findings: list[Finding]) -> list[Finding]:
        """The findings with each pending suggestion made ("moved to X?") or dropped."""
        wanted = sorted({f.path or "" for f in findings if f.suggestion == PENDING})
        found = self.find(wanted) if wanted else {}
        return [
            replace(f, suggestion=f"moved to {found[f.path or '']}?" if found.get(f.path or "") else None)
            if f.suggestion == PENDING
            else f
            for f in findings
        ]

    def find(self, missing: list[str]) -> dict[str, str | None]:
        if self.history is None:
            return {}
        head = self._git("rev-parse", "--verify", "--quiet", f"{self.history[1]}^{{commit}}").strip()
        if not head:
            return {}
        answers: dict[str, str | None] = {}
        for path in missing:
            known = self.cache.recall(f"home:{head}:{path}")
            if isinstance(known, list) and len(known) == 1:
                answers[path] = known[0]
        asked = [p.strip("/") for p in missing if p not in answers and p.strip("/")]
        if asked:
            found = self._look_up(head, asked)
            for path in asked:
                answers[path] = found.get(path)
                self.cache.remember(f"home:{head}:{path}", [answers[path]])
        return answers

    def _look_up(self, head: str, missing: list[str]) -> dict[str, str | None]:
        log = self._git("log", "--diff-filter=D", "--name-only", "--format=%x00%H", head, "--", *missing)
        removing: dict[str, str] = {}  # missing path -> the latest commit that removed it (or files under it)
        commit = ""
        for line in log.splitlines():
            if line.startswith("\0"):
                commit = line[1:]
            elif line:
                for path in missing:
                    if path not in removing and (line == path or line.startswith(path + "/")):
                        removing[path] = commit
        found: dict[str, str | None] = {}
        renames: dict[str, list[tuple[str, str]]] = {}
        for path, commit in removing.items():
            if commit not in renames:
                if len(renames) >= MAX_COMMITS:
                    continue
                renames[commit] = self._renames(commit)
            found[path] = self._where(path, commit, renames[commit])
        return found

    def _where(self, missing: str, commit: str, renames: list[tuple[str, str]]) -> str | None:
        places = set()
        for old, new in renames:
            if old == missing:
                places = {new}
                break
            if old.startswith(missing + "/"):
                tail = old[len(missing) :]
                places.add(new[: -len(tail)] if new.endswith(tail) else "")
        if len(places) == 1:
            moved = places.pop()
            test = is_test_path(missing) == is_test_path(moved)
            return moved if moved and test and self.tree.exists(moved) else None
        if places or missing in self.tree.dirs or posixpath.splitext(missing)[1] == "":
            return None  # a folder's files went apart, or a folder: no one place to suggest
        return self._similar(missing, self._git("show", f"{commit}^:./{missing}")[:MAX_TEXT])

    def _similar(self, missing: str, before: str) -> str | None:
        """A same-named file (test for test) that holds most of the removed file's text."""
        if not before:
            return None
        test = is_test_path(missing)
        for candidate in sorted(self.tree.by_name.get(posixpath.basename(missing), [])):
            if candidate in self.tree.dirs or is_test_path(candidate) != test:
                continue
            matcher = difflib.SequenceMatcher(None, before, self.read(candidate)[:MAX_TEXT], autojunk=False)
            if matcher.quick_ratio() >= SIMILAR and matcher.ratio() >= SIMILAR:
                return candidate
        return None

    def _renames(self, commit: str) -> list[tuple[str, str]]:
        """(old, new) of each rename git's detection finds in `commit`."""
        listing = self._git("show", "-M", "--name-status", "--relative", "--format=", commit)
        out = []
        for line in listing.splitlines():
            status, _, paths = line.partition("\t")
            old, _, new = paths.partition("\t")
            if status.startswith("R") and new:
                out.append((old, new))
        return out

    def _git(self, *args: str) -> str:
        if self.history is None:
            return ""
        try:
            done = run_git(self.history[0], *args, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout if done.returncode == 0 else ""
