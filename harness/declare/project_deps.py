"""The project's own dependency lists that its images install: extras and PEP 735 dependency groups.

`[tool.gpuci] extras = ["test"]` takes `[project.optional-dependencies] test`, or, for a setuptools
project that declares them there, setup.cfg's `[options.extras_require] test`; `dependency_groups =
["test"]` takes `[dependency-groups] test`, its `{include-group = "…"}` entries followed. They are
resolved with the requirement files, for the image's own Python.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.untrusted import parse_toml, project_text

if TYPE_CHECKING:
    from harness.declare.pyproject import Pyproject


def declared_requirements(
    root: Path, pyproject: Pyproject | None, extras: tuple[str, ...], groups: tuple[str, ...]
) -> list[str]:
    """Requirement lines of the named extras and groups, in order, each once. `pyproject` is the
    project's pyproject.toml as the command's config read it (harness.declare.pyproject): not read again."""
    if not extras and not groups:
        return []
    path = Path(root) / "pyproject.toml"
    data = pyproject.data if pyproject else {}
    lines: list[str] = []
    optional = declared_extras(Path(root), data)
    for extra in extras:
        if extra not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise UsageError(
                f"{path}: [tool.gpuci] extras names {extra!r}, which neither [project.optional-dependencies] "
                f"nor setup.cfg's [options.extras_require] declares (declared: {known})."
            )
        lines += optional[extra]
    table = data.get("dependency-groups") or {}
    for group in groups:
        lines += _group(path, table, group, ())
    return list(dict.fromkeys(lines))


def declared_extras(root: Path, pyproject: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """The project's extras and their requirement lines: `[project.optional-dependencies]`, and
    setup.cfg's `[options.extras_require]` (setuptools' declarative form) for the names it lacks.
    `pyproject`: the document as a command's config read it; None reads it here (`gpuci init`)."""
    data = _pyproject(root) if pyproject is None else pyproject
    optional = (data.get("project") or {}).get("optional-dependencies") or {}
    extras = {str(name): [str(r) for r in entries] for name, entries in optional.items()}
    for name, entries in _setup_cfg_extras(root).items():
        extras.setdefault(name, entries)
    return extras


def declared_groups(root: Path) -> list[str]:
    """The names of the project's PEP 735 `[dependency-groups]` (`gpuci init` reads them)."""
    table = _pyproject(root).get("dependency-groups") or {}
    return [str(name) for name in table] if isinstance(table, dict) else []


def _pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        return parse_toml(project_text(path, root), path)
    except (OSError, ValueError) as exc:  # Refused, TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"{path}: cannot read the extras and dependency groups [tool.gpuci] names ({exc}).") from None


def _setup_cfg_extras(root: Path) -> dict[str, list[str]]:
    """setup.cfg's `[options.extras_require]`, as setuptools reads it (`%(other)s` interpolated, one
    requirement a line); read as data, bounded, never run."""
    path = root / "setup.cfg"
    if not path.exists() and not path.is_symlink():
        return {}
    parser = configparser.ConfigParser()  # as setuptools reads it: BasicInterpolation (depth-capped), names kept
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(project_text(path, root), str(path))
        if not parser.has_section("options.extras_require"):
            return {}
        section = parser["options.extras_require"]
        values = {name: section[name] for name in section}
    except (OSError, ValueError, configparser.Error) as exc:
        raise UsageError(f"{path}: cannot read its [options.extras_require] ({exc}); fix the file.") from None
    return {
        name: [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        for name, text in values.items()
    }


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
