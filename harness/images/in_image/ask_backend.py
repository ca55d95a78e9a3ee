"""Run inside a container (never on the host): ask the project's build backend what its builds need.

    python ask_backend.py PROJECT [LIB]

LIB: a folder with the build requirements' files (unpacked wheels), put first on the path.

PEP 517's `get_requires_for_build_wheel` and PEP 660's `get_requires_for_build_editable` are where a
backend says what it needs beyond `[build-system] requires` (hatchling's editable build needs
`editables`, scikit-build-core asks for `cmake` and `ninja` where the system has none, setuptools for
`wheel` in older releases). The backend is the project's choice and may run the project's setup.py,
so this runs in a container with no network. It prints one line, MARKER followed by JSON:
{"wheel": [...], "editable": [...]}, or {"error": "..."} with the backend's last words.

Standard library only, Python 3.8 and later.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

MARKER = "GPUCI-BACKEND-REQUIRES "
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"


def _backend(project: str):  # type: ignore[no-untyped-def]
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:  # Python 3.10 and older: tomli, the backend's or pip's
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    path = os.path.join(project, "pyproject.toml")
    system = {}
    if os.path.exists(path):
        with open(path, "rb") as file:
            system = tomllib.load(file).get("build-system") or {}
    name = system.get("build-backend") or LEGACY_BACKEND
    if name == LEGACY_BACKEND:  # as a PEP 517 frontend runs a legacy setup.py: from its folder, importable
        sys.path.insert(0, project)
    for folder in reversed(system.get("backend-path") or []):  # in-tree backends (PEP 517)
        sys.path.insert(0, os.path.join(project, folder))
    module_name, _, attribute = name.partition(":")
    backend = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        backend = getattr(backend, part)
    return backend


def main(project: str, lib: str | None = None) -> int:
    os.chdir(project)
    if lib:
        sys.path.insert(0, lib)
    # Not on the path for other backends (pip's build runs its hook from elsewhere): Bottleneck's setup.py
    # imports versioneer, the one its build requires (0.29, reads pyproject.toml), never its own older copy.
    result: dict[str, object]
    try:
        backend = _backend(project)
        result = {"wheel": list(backend.get_requires_for_build_wheel({}))}
        editable = getattr(backend, "get_requires_for_build_editable", None)
        result["editable"] = list(editable({})) if editable is not None else []
    except BaseException as exc:  # the backend's or the project's error: reported, never raised
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        result = {"error": "".join(lines)[-3000:]}
    sys.stdout.flush()
    print("\n" + MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
