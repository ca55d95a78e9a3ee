"""The project itself installed in its image: editable, at the path its checkout is mounted at.

Tests that read the package's own metadata (`importlib.metadata.version("mylib")`) or run its
console scripts need the project installed, not only on PYTHONPATH. gpuci installs it once per
content tag, editable at the workspace path (`/workspace`): the metadata and entry points live in
the image, while the code imported is the checkout mounted over that path at run time, so a
change to the code needs no new image — only a change to what the metadata is made from
(pyproject.toml, setup.py, setup.cfg) does, and that is what the tag covers.

The build backend (`[build-system] requires`, setuptools for a setup.py project) and the static
`[project] dependencies` are resolved with the rest of the project's requirements; the install
itself is `pip install --no-deps --no-build-isolation --no-index -e`, offline, inside the build's
container (the project's setup.py never runs on the host). A project whose version comes from git
(setuptools-scm, hatch-vcs) is built without `.git`: its version is its sdist's PKG-INFO where
there is one, else `0+gpuci`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import UsageError
from harness.git import checkout_files
from harness.images.toolchain import BuildNeeds, build_needs, is_compiled_source
from harness.untrusted import PROJECT_FILE_LIMIT, Refused, read_capped

if TYPE_CHECKING:
    from harness.declare.pyproject import Pyproject

PYPROJECT = "pyproject.toml"
METADATA_FILES = (PYPROJECT, "setup.py", "setup.cfg")
MODES = ("editable", "none")
# What setuptools needs to build a setup.py project that declares no [build-system] (PEP 517's default).
LEGACY_BUILD = ("setuptools>=64", "wheel")
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
# The in-image script that runs the install and keeps its build outputs (harness/images/in_image).
INSTALL_SCRIPT = "gpuci-install-project.py"
INSTALL_SCRIPT_SOURCE = Path(__file__).parent / "in_image" / "install_project.py"
OUTPUTS_DIR = "/opt/gpuci/outputs"  # the build outputs the mount would hide, first on the import path
MESON_BUILD_DIR = "/opt/gpuci/meson-build"
SKBUILD_BUILD_DIR = "/opt/gpuci/skbuild-build"
# Backends whose editable can rebuild on import (meson-python always, scikit-build-core with
# editable.rebuild): their build folder is the image's, never a folder of the mounted checkout.
BUILD_DIRS = {"mesonpy": MESON_BUILD_DIR, "scikit_build_core.build": SKBUILD_BUILD_DIR}
CARGO_TARGET_DIR = "/opt/gpuci/cargo-target"
# Never copied into a build context: git's data, gpuci's and nox's own folders.
NOT_COPIED = (".git", ".gpuci", ".nox")
SCM_FALLBACK_VERSION = "0+gpuci"


@dataclass(frozen=True)
class ProjectInstall:
    workspace: str  # where the checkout is mounted in containers: the editable install points there
    metadata_sha256: str  # of pyproject.toml, setup.py and setup.cfg as they are
    requirements: tuple[str, ...]  # the build backend's and the static [project] dependencies
    backend: str = LEGACY_BACKEND  # [build-system] build-backend
    needs: BuildNeeds | None = None  # the compiler (and Rust) its build needs; None: a pure-Python build
    build_requires: tuple[str, ...] = LEGACY_BUILD  # [build-system] requires: what asking the backend needs

    def dockerfile_lines(self) -> str:
        """Appended to a recipe from before gpuci's own layer (harness/images/context.py composes the
        newer ones): the checkout's copy and gpuci's install script, then the install."""
        return (
            "\n# gpuci: the project itself, editable at the workspace its checkout is mounted at\n"
            f"COPY project/ {self.workspace}/\n"
            f"COPY {INSTALL_SCRIPT} /opt/gpuci/{INSTALL_SCRIPT}\n"
            f"RUN set -e; {self.install_command()}\n"
        )

    def install_command(self) -> str:
        """The shell commands of the install: the checkout's copy installed, its build outputs moved out
        of the workspace (install_project.py), then its code left to the mount (the copy stays in a
        layer: setuptools needs the packages there to map them). uv installs where gpuci's layer put it
        (/opt/gpuci/bin/uv), pip otherwise (no uv's wheel on the host, or a base uv does not run on)."""
        version = f"${{SETUPTOOLS_SCM_PRETEND_VERSION:-{SCM_FALLBACK_VERSION}}}"
        # Builds that rebuild on import (meson-python, scikit-build-core) keep their folder in the image.
        build_dir = BUILD_DIRS.get(self.backend)
        uv_settings = f"--config-setting=build-dir={build_dir} " if build_dir else ""
        pip_settings = f"--config-settings=build-dir={build_dir} " if build_dir else ""
        ninja = f"--ninja-dir {build_dir} " if build_dir else ""  # its times settled (install_project.py)
        after = f"    if [ -d {build_dir} ]; then chmod -R a+rwX {build_dir}; fi; \\\n" if build_dir else ""
        # cargo's build folder outside the workspace (not moved into the outputs), gone once installed.
        rust = self.needs is not None and self.needs.rust
        cargo = f"export CARGO_TARGET_DIR={CARGO_TARGET_DIR}; " if rust else ""
        after += f"    rm -rf {CARGO_TARGET_DIR}; \\\n" if rust else ""
        return (
            f'PY=/opt/gpuci/venv/bin/python; [ -x "$PY" ] || PY=python3; UV=/opt/gpuci/bin/uv; {cargo}\\\n'
            f"    if [ ! -f {self.workspace}/PKG-INFO ]; then export SETUPTOOLS_SCM_PRETEND_VERSION={version}; fi; \\\n"
            f'    INSTALL="$PY /opt/gpuci/{INSTALL_SCRIPT} {self.workspace} {OUTPUTS_DIR} {ninja}--"; \\\n'
            '    if [ -x "$UV" ]; then \\\n'
            '        $INSTALL "$UV" pip install --python "$PY" \\\n'
            "            --offline --no-index --no-cache --no-deps --no-build-isolation --quiet "
            f"{uv_settings}-e {self.workspace}; \\\n"
            '        CHECK="$UV pip check --python $PY"; \\\n'
            "    else \\\n"
            '        $INSTALL "$PY" -m pip install \\\n'
            "            --no-deps --no-build-isolation --no-index --disable-pip-version-check --use-pep517 --quiet "
            f"{pip_settings}-e {self.workspace}; \\\n"
            '        CHECK="$PY -m pip check"; \\\n'
            "    fi; \\\n"
            f"{after}"
            "    $CHECK || echo 'gpuci: warning: the project needs packages its image lacks "
            "(list them in [tool.gpuci] requirements)'"
        )


def project_install(root: Path, mode: str, workspace: str, pyproject: Pyproject | None) -> ProjectInstall | None:
    """How the project at `root` goes into its image, or None: `mode` "none", or nothing to install
    (no setup.py, and a pyproject.toml with neither [project] nor [build-system]). `pyproject` is its
    pyproject.toml as the command's config read it (harness.declare.pyproject): not read again here."""
    if mode not in MODES:
        raise UsageError(
            f'{Path(root) / "pyproject.toml"}: [tool.gpuci] install is {mode!r}; use "editable" (the project '
            'installed in its image, its code from the checkout) or "none".'
        )
    root = Path(root)
    metadata = pyproject.data if pyproject else {}
    has_setup = (root / "setup.py").is_file()
    if mode == "none" or not (has_setup or "project" in metadata or "build-system" in metadata):
        return None
    if not re.match(r"^/[A-Za-z0-9._/-]*$", workspace):  # it is written into the Dockerfile
        raise UsageError(
            f"the workspace {workspace[:80]!r} is not a plain absolute path; it must be one to install into."
        )
    system = metadata.get("build-system", {})
    build = system.get("requires")
    requirements = [str(r) for r in (build if build is not None else LEGACY_BUILD)]
    requirements += [str(r) for r in metadata.get("project", {}).get("dependencies", [])]
    digest = hashlib.sha256()
    for name in METADATA_FILES:
        path = root / name
        if name == PYPROJECT:  # as read once; a link is hashed as no file, as _metadata does
            data = pyproject.raw if pyproject and not path.is_symlink() else b""
        else:
            data = _metadata(path, root)
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    backend = str(system.get("build-backend") or LEGACY_BACKEND)
    needs = build_needs(root, metadata)
    if needs is not None:  # its compiled modules are the image's: a changed source is a new image
        from harness.images.file_digests import file_digests

        # Read only where a stat no longer vouches for the digest a run before this one took.
        sources = file_digests(root, sorted(n for n in checkout_names(root) if is_compiled_source(n)))
        for name, source_digest in sources.items():
            digest.update(f"compiled\0{name}\0{source_digest}\0".encode())
    build_requires = tuple(str(r) for r in (build if build is not None else LEGACY_BUILD))
    return ProjectInstall(
        workspace, digest.hexdigest(), tuple(dict.fromkeys(requirements)), backend, needs, build_requires
    )


def _metadata(path: Path, root: Path) -> bytes:
    """A metadata file's bytes for the install layer's hash (none: absent, a link or not a file)."""
    if not path.is_file() or path.is_symlink():
        return b""
    try:
        return read_capped(path, PROJECT_FILE_LIMIT, root)
    except Refused as exc:
        raise UsageError(f"{exc}; the project's metadata files are regular files of at most 2 MiB.") from None


def checkout_names(root: Path) -> list[str]:
    """The checkout's files: git's list (tracked, and untracked ones not ignored), else every file but
    gpuci's, nox's and git's folders."""
    names = checkout_files(root)
    if names is None:
        names = []
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = [s for s in subdirs if s not in NOT_COPIED]
            names += [os.path.relpath(os.path.join(directory, n), root) for n in files]
    return [n for n in names if n.split("/", 1)[0] not in NOT_COPIED and ".." not in n.split("/")]


def copy_checkout(root: Path, target: Path) -> int:
    """The checkout's files (git's list: tracked, and untracked ones not ignored) into `target` for
    the build. The checkout is the pull request's: links are copied as links, never followed, and
    anything but regular files and links is left out. Returns how many files were copied."""
    names = checkout_names(root)
    inside = os.path.realpath(root)
    copied = 0
    for name in names:
        if name.split("/", 1)[0] in NOT_COPIED or ".." in name.split("/"):
            continue
        source, destination = Path(root) / name, target / name
        folder = os.path.realpath(source.parent)
        if folder != inside and not folder.startswith(inside + os.sep):
            continue  # a folder on the way is a link out of the checkout
        try:
            info = os.lstat(source)
        except OSError:
            continue  # listed by git, gone from the tree
        destination.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), destination)
        elif stat.S_ISREG(info.st_mode):
            descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(descriptor, "rb") as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(destination, stat.S_IMODE(info.st_mode) & 0o755)
            copied += 1
    return copied
