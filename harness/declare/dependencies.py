"""When a changed file touches a step: its `source_file_dependencies`, matched as the project's
own pipeline generator matches them (`[tool.gpuci] dependency_match`).

`component` (the default): `a/b` matches `a/b` and `a/b/…`, never `a/bc`. `substring`: an entry
matches every path that contains it, as generators that test `entry in path` do, so `vllm/config`
also matches `vllm/config.py`. A `!entry` excludes what it matches, either way.
"""

from __future__ import annotations

from collections.abc import Iterable

DEPENDENCY_MATCHES = ("component", "substring")


def matches(path: str, pattern: str, mode: str = "component") -> bool:
    pattern = pattern.strip().strip("/")
    if pattern in ("", "."):
        return True
    if mode == "substring":
        return pattern in path
    return path == pattern or path.startswith(pattern + "/")


def touches(path: str, dependencies: Iterable[str], mode: str = "component") -> bool:
    """A changed path touches a step when an entry matches it and no `!entry` excludes it."""
    dependencies = list(dependencies)
    excluded = any(matches(path, d[1:], mode) for d in dependencies if d.startswith("!"))
    return not excluded and any(matches(path, d, mode) for d in dependencies if not d.startswith("!"))
