"""The project's own dependency lists that its images install: extras and PEP 735 dependency groups.

`[tool.gpuci] extras = ["test"]` takes `[project.optional-dependencies] test`; `dependency_groups =
["test"]` takes `[dependency-groups] test`, its `{include-group = "…"}` entries followed. They are
resolved with the requirement files, for the image's own Python.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.untrusted import parse_toml, project_text

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - Python 3.10
    pass


def declared_requirements(root: Path, extras: tuple[str, ...], groups: tuple[str, ...]) -> list[str]:
    """Requirement lines of the named extras and groups, in order, each once."""
    if not extras and not groups:
        return []
    path = Path(root) / "pyproject.toml"
    try:
        data = parse_toml(project_text(path, Path(root)), path)
    except (OSError, ValueError) as exc:  # Refused, TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"{path}: cannot read the extras and dependency groups [tool.gpuci] names ({exc}).") from None
    lines: list[str] = []
    optional = (data.get("project") or {}).get("optional-dependencies") or {}
    for extra in extras:
        if extra not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise UsageError(
                f"{path}: [tool.gpuci] extras names {extra!r}, which [project.optional-dependencies] does not "
                f"declare (declared: {known})."
            )
        lines += [str(r) for r in optional[extra]]
    table = data.get("dependency-groups") or {}
    for group in groups:
        lines += _group(path, table, group, ())
    return list(dict.fromkeys(lines))


def _group(path: Path, table: dict[str, Any], name: str, seen: tuple[str, ...]) -> list[str]:
    if name in seen:
        raise UsageError(f"{path}: [dependency-groups] {name!r} includes itself ({' -> '.join([*seen, name])}).")
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise UsageError(
            f"{path}: [tool.gpuci] dependency_groups names {name!r}, which [dependency-groups] does not declare "
            f"(declared: {known})."
        )
    lines: list[str] = []
    for entry in table[name]:
        if isinstance(entry, dict) and "include-group" in entry:
            lines += _group(path, table, str(entry["include-group"]), (*seen, name))
        else:
            lines.append(str(entry))
    return lines
