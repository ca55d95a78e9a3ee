"""The project's own dependency lists that its images install: extras and PEP 735 dependency groups.

`[tool.gpuci] extras = ["test"]` takes `[project.optional-dependencies] test`; `dependency_groups =
["test"]` takes `[dependency-groups] test`, its `{include-group = "…"}` entries followed. They are
resolved with the requirement files, for the image's own Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.declare.pyproject import Pyproject


def declared_requirements(pyproject: Pyproject | None, extras: tuple[str, ...], groups: tuple[str, ...]) -> list[str]:
    """Requirement lines of the named extras and groups of `pyproject` (as the config read it), in
    order, each once."""
    if not extras and not groups:
        return []
    if pyproject is None:
        raise UsageError(
            f"[tool.gpuci] names extras or dependency groups ({', '.join((*extras, *groups))}) but there is no "
            "pyproject.toml to declare them; drop the setting or add the file."
        )
    path, data = pyproject.path, pyproject.data
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
