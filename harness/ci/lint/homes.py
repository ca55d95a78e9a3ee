"""Where a path a step or a dependency names went: only where the project's history says so.

A file of the same name elsewhere is no evidence (a `test_moe.py` renamed `sub_test_moe.py` is not
the unrelated `fusers/test_moe.py`). A suggestion is made when git's rename detection, in the commit
that removed the path, says where it went, or when a file of the same name now has much of the text
the path had before it was removed. A test path is only ever suggested for a test path, a source
path only for a source path. Without history (an exported tree) nothing is suggested.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.ci.lint.tree import Tree
from harness.git import run_git

SIMILAR = 0.6  # SequenceMatcher ratio above which a same-named file holds the removed one's text
MAX_TEXT = 200_000  # a removed file's text read for comparison, at most
TEST_PATH = re.compile(r"(^|/)(tests?|testing)(/|$)|(^|/)(test_[^/]*|[^/]*_test\.py|conftest\.py)$")


def is_test_path(path: str) -> bool:
    return bool(TEST_PATH.search(path))


class Homes:
    """Suggestions for missing paths of one tree, from `repo`'s history up to `rev`."""

    def __init__(self, tree: Tree, history: tuple[Path, str] | None, read: Callable[[str], str]) -> None:
        self.tree, self.history, self.read = tree, history, read
        self._known: dict[str, str | None] = {}

    def of(self, missing: str) -> str | None:
        if missing not in self._known:
            self._known[missing] = self._find(missing.strip("/")) if self.history and missing else None
        return self._known[missing]

    def _find(self, missing: str) -> str | None:
        removed = self._git("log", "-1", "--format=%H", "--diff-filter=D", self._rev, "--", missing).strip()
        if not removed:
            return None  # never in the history here (a typo), or still there
        moved = self._renamed(removed, missing)
        if moved is not None:
            return moved if is_test_path(moved) == is_test_path(missing) and self.tree.exists(moved) else None
        if missing in self.tree.dirs or posixpath.splitext(missing)[1] == "":
            return None  # a folder's files went apart: no one place to suggest
        before = self._git("show", f"{removed}^:./{missing}")[:MAX_TEXT]
        if not before:
            return None
        test = is_test_path(missing)
        for candidate in sorted(self.tree.by_name.get(posixpath.basename(missing), [])):
            if candidate in self.tree.dirs or is_test_path(candidate) != test:
                continue
            text = self.read(candidate)[:MAX_TEXT]
            matcher = difflib.SequenceMatcher(None, before, text, autojunk=False)
            if matcher.quick_ratio() >= SIMILAR and matcher.ratio() >= SIMILAR:
                return candidate
        return None

    def _renamed(self, commit: str, missing: str) -> str | None:
        """Where git's rename detection says `missing` (a file, or the files of a folder) went in `commit`."""
        listing = self._git("show", "-M", "--name-status", "--relative", "--format=", commit)
        places = set()
        for line in listing.splitlines():
            status, _, paths = line.partition("\t")
            old, _, new = paths.partition("\t")
            if not status.startswith("R") or not new:
                continue
            if old == missing:
                return new
            if old.startswith(missing + "/"):
                tail = old[len(missing) :]
                places.add(new[: -len(tail)] if new.endswith(tail) else None)
        return places.pop() if len(places) == 1 else None

    @property
    def _rev(self) -> str:
        return self.history[1] if self.history else "HEAD"

    def _git(self, *args: str) -> str:
        if self.history is None:
            return ""
        try:
            done = run_git(self.history[0], *args, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout if done.returncode == 0 else ""
