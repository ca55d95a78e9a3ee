"""Run inside the image's build (never on the host): the project's install, with its build outputs kept
where the checkout mounted over the workspace cannot hide them.

    python install_project.py WORKSPACE OUTPUTS [--site SITE_PACKAGES] [--ninja-dir BUILD_DIR] -- INSTALL COMMAND…

An editable install of a project with extensions (setuptools `build_ext` in editable mode, a
setuptools-scm `version_file`) writes files into the workspace copy in the image; at run time the
host's checkout is mounted over that folder and hides them, and building them there instead would
write into the host's checkout. So every file the install created under WORKSPACE is moved to the
same relative place under OUTPUTS (the build folder), and a finder is put first on the import path
(a `.pth` in the interpreter's site-packages): wherever Python looks in a folder of the workspace, it
looks in that folder's twin under OUTPUTS first. The code imported is still the mounted checkout's;
the compiled modules are the image's.

A build folder that rebuilds on import (`--ninja-dir`: meson-python's, scikit-build-core's with
`editable.rebuild`) is settled once installed: ninja compares its outputs' times with the sources', the
mounted checkout's at run time (a clone's are as new as the clone), and with those its logs recorded,
and rebuilt everything at every run's first import. The image is tagged by those sources' content, so
its outputs are current for any checkout it runs: every file there, and every time `.ninja_log` and
`.ninja_deps` hold, is set to one time later than any checkout's, and ninja finds nothing to do.

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


SETTLED_NS = 4102444800 * 10**9  # 2100-01-01, in ninja's nanoseconds
_DEPS_HEADER = b"# ninjadeps\n"


def settle_ninja(build_dir: str) -> int:
    """Every file under `build_dir`, and the times ninja's logs recorded, at SETTLED_NS; returns how many
    files. Logs of a format not known here are left as they are (ninja then rebuilds, as before)."""
    count = 0
    for folder, _, files in os.walk(build_dir):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            if name == ".ninja_log":
                _settle_log(path)
            elif name == ".ninja_deps":
                _settle_deps(path)
            os.utime(path, ns=(SETTLED_NS, SETTLED_NS))
            count += 1
    return count


def _settle_log(path: str) -> None:
    """`# ninja log v5` to v7: START END MTIME OUTPUT HASH, tab-separated; MTIME is the third."""
    with open(path, encoding="utf-8", errors="surrogateescape") as log:
        lines = log.read().split("\n")
    if not lines or not lines[0].startswith("# ninja log v"):
        return
    for i, line in enumerate(lines[1:], 1):
        fields = line.split("\t")
        if len(fields) >= 5:
            fields[2] = str(SETTLED_NS)
            lines[i] = "\t".join(fields)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as log:
        log.write("\n".join(lines))


def _settle_deps(path: str) -> None:
    """Version 4: records of a 32-bit size (top bit set: a deps record, else a path); a deps record is the
    output's id (32 bits), its time (64 bits, little-endian: low word first), then its inputs' ids."""
    with open(path, "rb") as deps:
        data = bytearray(deps.read())
    if not data.startswith(_DEPS_HEADER) or int.from_bytes(data[12:16], "little") != 4:
        return
    at = 16
    while at + 4 <= len(data):
        head = int.from_bytes(data[at : at + 4], "little")
        size, body = head & 0x7FFFFFFF, at + 4
        if body + size > len(data):
            break
        if head >> 31 and size >= 12:
            data[body + 4 : body + 12] = SETTLED_NS.to_bytes(8, "little")
        at = body + size
    with open(path, "wb") as deps:
        deps.write(bytes(data))


def main(argv: list[str]) -> int:
    workspace, outputs = os.path.abspath(argv[0]), os.path.abspath(argv[1])
    options, command = argv[2 : argv.index("--")], argv[argv.index("--") + 1 :]
    site = options[options.index("--site") + 1] if "--site" in options else sysconfig.get_paths()["purelib"]
    ninja_dir = options[options.index("--ninja-dir") + 1] if "--ninja-dir" in options else None
    before = files_under(workspace)
    print(START, flush=True)
    done = subprocess.run(command)
    if done.returncode != 0:
        print(f"{FAILED} (exit {done.returncode})", flush=True)
        return done.returncode
    if ninja_dir and os.path.isdir(ninja_dir):
        print(f"gpuci: {settle_ninja(ninja_dir)} file(s) of {ninja_dir} settled: ninja rebuilds nothing at import")
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
