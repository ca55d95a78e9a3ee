"""Run inside the image's build (never on the host): the project's install, with its build outputs kept
where the checkout mounted over the workspace cannot hide them.

    python install_project.py WORKSPACE OUTPUTS [--site SITE_PACKAGES] -- INSTALL COMMAND…

An editable install of a project with extensions (setuptools `build_ext` in editable mode, a
setuptools-scm `version_file`) writes files into the workspace copy in the image; at run time the
host's checkout is mounted over that folder and hides them, and building them there instead would
write into the host's checkout. So every file the install created under WORKSPACE is moved to the
same relative place under OUTPUTS (the build folder), and a finder is put first on the import path
(a `.pth` in the interpreter's site-packages): wherever Python looks in a folder of the workspace, it
looks in that folder's twin under OUTPUTS first. The code imported is still the mounted checkout's;
the compiled modules are the image's.

Standard library only, Python 3.8 and later: it runs on whatever Python the base image has.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES

START = "gpuci: building and installing the project"
FAILED = "gpuci: the project's build failed"
MODULE = "_gpuci_build_outputs"
IMPORTABLE = (".py", *EXTENSION_SUFFIXES)
SKIPPED_DIRS = ("build",)  # setuptools' temporary build tree: copies, never the module imported

FINDER = '''"""gpuci: the project's build outputs, first on the import path (see install_project.py in gpuci)."""
import os
import sys
from importlib.machinery import PathFinder
from importlib.util import spec_from_file_location

WORKSPACE = %(workspace)r
OUTPUTS = %(outputs)r
BY_DIR = %(by_dir)r  # workspace-relative folder -> {module name: file under OUTPUTS}
TOP = %(top)r  # top-level modules outside any package folder, when no folder of sys.path has them
NAMES = frozenset(n for d in BY_DIR.values() for n in d)


class BuildOutputs:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        name = fullname.rpartition(".")[2]
        if name not in NAMES:
            return None
        for folder in (path if path is not None else sys.path):
            try:
                full = os.path.abspath(folder or os.getcwd())
            except (OSError, TypeError):
                continue
            if full == WORKSPACE or full.startswith(WORKSPACE + os.sep):
                built = BY_DIR.get(os.path.relpath(full, WORKSPACE), {}).get(name)
                if built:
                    return _spec(fullname, built)
            spec = PathFinder.find_spec(fullname, [folder])
            if spec is not None and spec.loader is not None:
                return None  # a regular module earlier on the path: the usual import finds it
        if path is None and name in TOP:
            return _spec(fullname, TOP[name])
        return None


def _spec(fullname, built):
    """A module's spec; a package the build made whole (maturin's cffi module) searches its folder."""
    where = os.path.join(OUTPUTS, built)
    if os.path.basename(built).startswith("__init__."):
        return spec_from_file_location(fullname, where, submodule_search_locations=[os.path.dirname(where)])
    return spec_from_file_location(fullname, where)


def install():
    if BuildOutputs not in sys.meta_path:
        sys.meta_path.insert(0, BuildOutputs)
'''


def files_under(root: str) -> set[str]:
    found = set()
    for folder, _subdirs, files in os.walk(root):
        for name in files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


def module_name(relpath: str) -> str | None:
    base = os.path.basename(relpath)
    for suffix in sorted(IMPORTABLE, key=len, reverse=True):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return None


def _remove_empty_parents(workspace: str, rel: str) -> None:
    """The folders the build made and left empty (a package it wrote whole): gone with their files."""
    folder = os.path.dirname(rel)
    while folder:
        try:
            os.rmdir(os.path.join(workspace, folder))
        except OSError:
            return  # not empty: it holds the checkout's files
        folder = os.path.dirname(folder)


def main(argv: list[str]) -> int:
    workspace, outputs = os.path.abspath(argv[0]), os.path.abspath(argv[1])
    options, command = argv[2 : argv.index("--")], argv[argv.index("--") + 1 :]
    site = options[options.index("--site") + 1] if "--site" in options else sysconfig.get_paths()["purelib"]
    before = files_under(workspace)
    print(START, flush=True)
    done = subprocess.run(command)
    if done.returncode != 0:
        print(f"{FAILED} (exit {done.returncode})", flush=True)
        return done.returncode
    created = sorted(files_under(workspace) - before)
    if not created:
        return 0
    by_dir: dict[str, dict[str, str]] = {}
    top: dict[str, str] = {}
    # Packages the build made whole (maturin writes its cffi module `pkg/_native/` into the source folder):
    # found by their folder's name in the folder above; what is inside them is no top-level module.
    made = {os.path.dirname(rel) for rel in created if module_name(rel) == "__init__" and os.path.dirname(rel)}
    for package in sorted(made):
        init = next(rel for rel in created if os.path.dirname(rel) == package and module_name(rel) == "__init__")
        by_dir.setdefault(os.path.dirname(package) or ".", {})[os.path.basename(package)] = init
    for rel in created:
        target = os.path.join(outputs, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(os.path.join(workspace, rel), target)
        _remove_empty_parents(workspace, rel)
        name = module_name(rel)
        if name is None or rel.split(os.sep, 1)[0] in SKIPPED_DIRS:
            continue
        folder = os.path.dirname(rel) or "."
        by_dir.setdefault(folder, {})[name] = rel
        if folder not in made and not os.path.exists(os.path.join(workspace, folder, "__init__.py")):
            top.setdefault(name, rel)
    shown = [rel for rel in created if module_name(rel)]
    kept = ", ".join(shown)[:400] or "none of them a module (pdm-backend's .pdm-build, a Cargo.lock …)"
    print(f"gpuci: {len(created)} build output(s) kept in {outputs}, first on the import path: {kept}")
    with open(os.path.join(site, MODULE + ".py"), "w") as module:
        module.write(FINDER % {"workspace": workspace, "outputs": outputs, "by_dir": by_dir, "top": top})
    with open(os.path.join(site, MODULE + ".pth"), "w") as pth:
        pth.write(f"import {MODULE}; {MODULE}.install()\n")
    with open(os.path.join(outputs, "gpuci-outputs.json"), "w") as index:
        json.dump({"workspace": workspace, "created": created}, index)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
