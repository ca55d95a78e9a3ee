"""When a changed file touches a step: its `source_file_dependencies`, matched as the project's
own pipeline generator matches them (`[tool.gpuci] dependency_match`).

`component` (the default): `a/b` matches `a/b` and `a/b/…`, never `a/bc`. `substring`: an entry
matches every path that contains it, as generators that test `entry in path` do, so `vllm/config`
also matches `vllm/config.py`. `prefix`: a path that starts with the entry as written
(`file[:len(entry)] == entry`), so `tests/test_config` matches `tests/test_config.py`. A `!entry`
excludes what it matches, either way. One generator's files may match one way and another's
another: `[tool.gpuci.dependency_match_for]` names a mode per pipeline file, folder or glob.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from pathlib import Path

DEPENDENCY_MATCHES = ("component", "substring", "prefix")


def matches(path: str, pattern: str, mode: str = "component") -> bool:
    if mode == "prefix":
        return path.startswith(pattern.strip().lstrip("/"))
    pattern = pattern.strip().strip("/")
    if pattern in ("", "."):
        return True
    if mode == "substring":
        return pattern in path
    return path == pattern or path.startswith(pattern + "/")


def mode_for(pipeline_file: Path, default: str, per_file: Mapping[str, str]) -> str:
    """The match mode of one pipeline file: the first `dependency_match_for` entry that names it
    (the file, a folder holding it, or a glob), else the project's."""
    posix = pipeline_file.as_posix()
    for entry, mode in per_file.items():
        entry = entry.strip("/")
        if posix.endswith("/" + entry) or f"/{entry}/" in posix or fnmatch.fnmatch(posix, "*/" + entry):
            return mode
    return default


def touches(path: str, dependencies: Iterable[str], mode: str = "component") -> bool:
    """A changed path touches a step when an entry matches it and no `!entry` excludes it."""
    dependencies = list(dependencies)
    excluded = any(matches(path, d[1:], mode) for d in dependencies if d.startswith("!"))
    return not excluded and any(matches(path, d, mode) for d in dependencies if not d.startswith("!"))
