"""The project's files as the lint sees them: git's file list, folders, and what pytest collects."""

from __future__ import annotations

import bisect
import fnmatch
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {".git", ".nox", ".gpuci", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".mypy_cache"}


@dataclass
class Tree:
    """The repository's files, as sorted relative POSIX paths, with lookups lint needs."""

    files: list[str]
    dirs: set[str] = field(default_factory=set)
    by_name: dict[str, list[str]] = field(default_factory=dict)
    _joined: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def scan(cls, root: Path, names: list[str] | None = None) -> Tree:
        """The files `names` lists (git's list of the checkout or of a commit), else those under `root`."""
        files = list(names) if names is not None else None
        if files is None:
            files = []
            for directory, subdirs, names in os.walk(root):
                subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]
                rel = os.path.relpath(directory, root)
                files.extend(n if rel == "." else f"{rel}/{n}" for n in names)
        files.sort()
        tree = cls(files)
        for path in files:
            parent = posixpath.dirname(path)
            while parent and parent not in tree.dirs:
                tree.dirs.add(parent)
                parent = posixpath.dirname(parent)
            tree.by_name.setdefault(path.rpartition("/")[2], []).append(path)  # by basename
        for directory in tree.dirs:
            tree.by_name.setdefault(posixpath.basename(directory), []).append(directory)
        return tree

    def exists(self, path: str) -> bool:
        return path in ("", ".") or path in self.dirs or self._has_file(path)

    def matched_by(self, entry: str, mode: str) -> bool:
        """Whether any file matches a `source_file_dependencies` entry the way `dependencies.matches`
        does, without trying each file: a prefix by bisection, a substring in all the names at once."""
        if mode == "prefix":
            return self._starts(entry.strip().lstrip("/"))
        pattern = entry.strip().strip("/")
        if pattern in ("", "."):
            return bool(self.files)
        if mode == "substring":
            if self._joined is None:
                self._joined = "\n".join(self.files)  # names hold no newline that git lists (-z aside)
            return pattern in self._joined if "\n" not in pattern else any(pattern in f for f in self.files)
        return self._has_file(pattern) or self._starts(pattern + "/")

    def _starts(self, prefix: str) -> bool:
        i = bisect.bisect_left(self.files, prefix)
        return i < len(self.files) and self.files[i].startswith(prefix)

    def is_file(self, path: str) -> bool:
        """A file of the tree (not a folder)."""
        return self._has_file(path)

    def _has_file(self, path: str) -> bool:
        i = bisect.bisect_left(self.files, path)
        return i < len(self.files) and self.files[i] == path

    def under(self, path: str) -> Iterator[str]:
        """Files equal to `path` or inside it (a path-component prefix)."""
        if path in ("", "."):
            yield from self.files
            return
        if self._has_file(path):
            yield path
        prefix = path.rstrip("/") + "/"
        i = bisect.bisect_left(self.files, prefix)
        while i < len(self.files) and self.files[i].startswith(prefix):
            yield self.files[i]
            i += 1


@dataclass(frozen=True)
class PytestConfig:
    testpaths: tuple[str, ...] = ()
    python_files: tuple[str, ...] = ("test_*.py", "*_test.py")
    norecursedirs: tuple[str, ...] = (
        "*.egg",
        ".*",
        "_darcs",
        "build",
        "CVS",
        "dist",
        "node_modules",
        "venv",
        "{arch}",
    )

    @classmethod
    def read(cls, root: Path) -> PytestConfig:
        from harness.untrusted import parse_toml, project_text

        ini: dict[str, object] = {}
        pyproject = root / "pyproject.toml"
        if pyproject.exists():
            try:
                data = parse_toml(project_text(pyproject, root), pyproject)
                ini = data.get("tool", {}).get("pytest", {}).get("ini_options", {})
            except (OSError, ValueError):  # not TOML, too large, a link out: no pytest settings from it
                ini = {}
        for name in ("pytest.ini", "tox.ini", "setup.cfg"):
            if (root / name).exists() and not ini:
                import configparser

                parser = configparser.ConfigParser()
                try:
                    parser.read_string(project_text(root / name, root), str(root / name))
                except (OSError, ValueError, configparser.Error):  # too large, a link out, not ini
                    continue
                section = "pytest" if name == "pytest.ini" or parser.has_section("pytest") else "tool:pytest"
                if parser.has_section(section):
                    ini = {k: v.split() for k, v in parser.items(section)}
        base = cls()

        def words(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = ini.get(key)
            if value is None:
                return default
            return tuple(value.split() if isinstance(value, str) else value)  # type: ignore[union-attr]

        return cls(
            words("testpaths", ()),
            words("python_files", base.python_files),
            words("norecursedirs", base.norecursedirs),
        )

    def test_files(self, tree: Tree) -> list[str]:
        roots = self.testpaths or ("",)
        found = []
        excluded: dict[str, bool] = {}  # per folder: thousands of files share a few hundred
        for path in (p for r in roots for p in tree.under(r)):
            name = path.rpartition("/")[2]  # its basename
            if not any(fnmatch.fnmatch(name, pattern) for pattern in self.python_files):
                continue
            folder = posixpath.dirname(path)
            if folder not in excluded:
                excluded[folder] = self._excluded(folder)
            if excluded[folder]:
                continue
            found.append(path)
        return sorted(set(found))

    def _excluded(self, folder: str) -> bool:
        parts = folder.split("/") if folder else []
        for i, part in enumerate(parts):
            if part in SKIP_DIRS:
                return True
            for pattern in self.norecursedirs:
                if fnmatch.fnmatch(part, pattern) or ("/" in pattern and "/".join(parts[: i + 1]) == pattern):
                    return True
        return False
