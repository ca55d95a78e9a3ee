"""Whose fault a failed image build is: the project's own build (exit 2) or the engine's (75).

The project's install step prints a start line (harness/images/in_image/install_project.py); a build
that fails after it and before its end is the project's build, compile or install failing: a
compiler's error, a backend's exception, a CMake error. That is the user's to fix, so it is a
UsageError with the first such error and the file to look at (the compiler's file and line, mapped from
the workspace in the image to the checkout). Only a full disk there stays infrastructure.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from harness.errors import UsageError
from harness.git import ignored_files
from harness.images.in_image.install_project import FAILED, START
from harness.images.project_install import LEGACY_BACKEND, MESON_BUILD_DIR, ProjectInstall

COMPILER = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)?\s*(?:fatal )?error: (?P<what>.+)$")
MESON = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):\d+: ERROR: (?P<what>.+)$")
CMAKE = re.compile(r"^CMake Error at (?P<file>[^\s:]+):(?P<line>\d+)")
RUST = re.compile(r"^error(?:\[E\d+\])?: (?P<what>.+)$")
RUST_AT = re.compile(r"^\s*--> (?P<file>[^\s:]+):(?P<line>\d+)")
# `python -m cython` (a CMake or ninja rule) with no such module says it on a line of its own.
NO_MODULE = re.compile(r"(?:^|: )No module named '?[\w.]+'?$")
EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?(?P<kind>[A-Z]\w*(?:Error|Exception)): (?P<what>.+)$")
# pip's and uv's own lines around a backend's failure: not the error itself.
PIP_WORDS = (
    "subprocess-exited-with-error",
    "metadata-generation-failed",
    "× ",
    "╰─>",
    "note: ",
    "hint: ",
    "Failed to build `",
)
DISK = ("No space left on device", "Disk quota exceeded")


def project_failure(lines: list[str], root: Path, install: ProjectInstall | None) -> UsageError | None:
    """The user's error when the build failed inside the project's own install step, else None."""
    if install is None:
        return None
    starts = [i for i, line in enumerate(lines) if line.strip() == START]
    if not starts:
        return None
    step = [line.rstrip() for line in lines[starts[-1] + 1 :]]
    if any(word in line for line in step for word in DISK):
        return None  # the disk: a retry elsewhere can pass
    if not any(line.startswith(FAILED) for line in step) and not any(COMPILER.match(x.strip()) for x in step):
        return None
    where, first = _first_error(step, Path(root), install)
    return UsageError(
        f"{where}: the project's build failed in its image: {first[:400]}. Fix the build (the build's output "
        "is above); gpuci built it as `pip install --no-build-isolation -e .` does, offline, with the packages "
        "the lock holds and the image's system packages ([tool.gpuci] system_packages adds more)."
        + _ignored_named(step, Path(root))
    )


def _ignored_named(step: list[str], root: Path) -> str:
    """A sentence naming the git-ignored files of the checkout the build's output names: the image's
    copy holds git's files only (a clone's), so a generated source an sdist ships but .gitignore
    lists (Cython's `.cxx`) is not there, and the build tries to make it again."""
    words = {w for line in step for w in re.split(r"[\s'\"`:,()\[\]]+", line) if w}
    paths = {w.split("/", i)[-1] for w in words for i in range(w.count("/") + 1)}  # each tail: x/y.c, y.c
    named = [n for n in ignored_files(root) if n in paths]
    if not named:
        return ""
    shown = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
    return (
        f" The build names {shown}, in the checkout but ignored by git: the image's copy of the checkout holds "
        "git's files only (tracked, and untracked ones not ignored), as a clone would; commit it (`git add -f`) "
        "or let the build make it."
    )


def _first_error(step: list[str], root: Path, install: ProjectInstall) -> tuple[str, str]:
    text = [line.strip() for line in step]
    for line in text:
        match = COMPILER.match(line)
        if match:
            return f"{_host_path(match.group('file'), root, install)}:{match.group('line')}", line
    for line in text:
        match = CMAKE.match(line) or MESON.match(line)
        if match:
            return f"{_host_path(match.group('file'), root, install)}:{match.group('line')}", line
    for number, line in enumerate(text):
        match = RUST.match(line)
        if match and "could not compile" not in line and not any(word in line for word in PIP_WORDS):
            at = next((RUST_AT.match(x) for x in text[number + 1 : number + 4] if RUST_AT.match(x)), None)
            where = (
                f"{_host_path(at.group('file'), root, install)}:{at.group('line')}" if at else _metadata(root, install)
            )
            return where, line
    missing = next((line for line in text if NO_MODULE.search(line)), None)
    if missing is not None:
        return _metadata(root, install), missing
    exceptions = [line for line in text if EXCEPTION.match(line)]
    if exceptions:
        return _metadata(root, install), exceptions[-1]
    errors = [line for line in text if line.lower().startswith("error") and not any(w in line for w in PIP_WORDS)]
    if errors:
        return _metadata(root, install), errors[0]
    last = next((line for line in reversed(text) if line and not line.startswith(FAILED)), "no output")
    return _metadata(root, install), last


def _host_path(name: str, root: Path, install: ProjectInstall) -> str:
    """A file the image's build names, as the checkout's: /workspace/x.c and x.c are root/x.c."""
    if install.backend == "mesonpy" and ".." in name.split("/"):  # ninja names sources from its build folder
        name = posixpath.normpath(posixpath.join(MESON_BUILD_DIR, name))
    prefix = install.workspace.rstrip("/") + "/"
    relative = name[len(prefix) :] if name.startswith(prefix) else name
    if relative.startswith("/") or ".." in relative.split("/"):
        return name  # a system header or a build folder's file: named as the build named it
    return str(root / relative)


def _metadata(root: Path, install: ProjectInstall) -> str:
    name = "setup.py" if install.backend == LEGACY_BACKEND or (root / "setup.py").is_file() else "pyproject.toml"
    return str(root / name)
