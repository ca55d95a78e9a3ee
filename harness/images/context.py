"""An image's build context: which files go into which layer.

gpuci's own layer (`gpuci/`, copied to /opt/gpuci by the recipe: its pinned test dependencies' wheels,
uv's wheel, the extra CA bundle, its in-image scripts) holds nothing of the project, so every project
on the same base gets that layer from the engine's cache. gpuci then appends the project's layer: one
COPY of `project-layer/` to `/` (the resolved dependencies' pins and wheels under
/opt/gpuci/project-deps, the checkout at its workspace), the labels, and one RUN that installs both.
Few steps on purpose: on a storage driver without a native diff (fuse-overlayfs) each step's commit
walks the whole tree, 10-30 s once numpy, scipy and pandas are in it (bench/cold_image_bench.py).
A recipe written before these layers (it copies `wheelhouse/`) gets the one folder of every wheel it
expects and the old steps.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from harness.images.installer import UV
from harness.images.project_install import INSTALL_SCRIPT, INSTALL_SCRIPT_SOURCE, ProjectInstall
from harness.images.wheels import copy_verified

GPUCI_LAYER = "gpuci"
PROJECT_LAYER = "project-layer"
DEPS_IN_IMAGE = "opt/gpuci/project-deps"
IN_IMAGE = Path(__file__).parent / "in_image"
INSTALL_WHEELS = IN_IMAGE / "install_wheels.py"
# The scripts gpuci's layer carries: what they do is part of the image, so of its content tag.
SCRIPTS = (INSTALL_WHEELS, INSTALL_SCRIPT_SOURCE)
_WHEEL = re.compile(r"^([^-]+)-([^-]+)-")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def is_legacy(dockerfile_text: bytes) -> bool:
    """A recipe from before gpuci's own layer: it copies one `wheelhouse/` of every wheel."""
    return b"COPY wheelhouse/" in dockerfile_text and f"COPY {GPUCI_LAYER}/".encode() not in dockerfile_text


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_in(text: str) -> list[str]:
    """The `name==version` lines of a requirements file (gpuci's own pins)."""
    return [f"{m.group(1)}=={m.group(2)}" for m in map(_PIN.match, text.splitlines()) if m]


def wheels_for(wheelhouse: Path, pins: Iterable[str]) -> set[str]:
    """The wheelhouse's wheel files of these `name==version` pins (every platform's that is there)."""
    wanted = {(normalized(name), version) for name, _, version in (pin.partition("==") for pin in pins)}
    found = set()
    for path in wheelhouse.glob("*.whl"):
        match = _WHEEL.match(path.name)
        if match and (normalized(match.group(1)), match.group(2)) in wanted:
            found.add(path.name)
    return found


def write_own_layer(
    ctx: Path, root: Path, wheelhouse: Path, requirements: Path, ca_bundle: bytes
) -> tuple[str, set[str]]:
    """gpuci's layer (`gpuci/`) into `ctx`: the record of its wheels' hashes, and their names."""
    gpuci, build = ctx / GPUCI_LAYER, ctx / GPUCI_LAYER / "build"
    build.mkdir(parents=True)
    shutil.copyfile(INSTALL_WHEELS, gpuci / INSTALL_WHEELS.name)
    shutil.copyfile(INSTALL_SCRIPT_SOURCE, gpuci / INSTALL_SCRIPT)
    text = requirements.read_text()
    (build / "requirements.txt").write_text(text)
    (build / "extra-ca.crt").write_bytes(ca_bundle)
    own = wheels_for(wheelhouse, [*pins_in(text), UV])
    return copy_verified(root, wheelhouse, build / "wheels", own), own


def write_deps(deps: Path, root: Path, wheelhouse: Path, project_pins: list[str], own: set[str]) -> str:
    """The project's pins and the wheels gpuci's layer lacks into `deps`; the record of their hashes."""
    deps.mkdir(parents=True)
    (deps / "requirements.txt").write_text("".join(f"{pin}\n" for pin in project_pins))
    return copy_verified(root, wheelhouse, deps / "wheels", wheels_for(wheelhouse, project_pins) - own)


def own_layer_hash(recipe_text: bytes, build_args: dict[str, str], base_id: str, own_digests: str) -> str:
    """What gpuci's layer is made of (the recipe, its arguments, the image it builds on, its wheels, the
    scripts): its image's tag, so a second project on the base finds it without asking the builder."""
    digest = hashlib.sha256(recipe_text)
    for part in (repr(sorted(build_args.items())), base_id, own_digests):
        digest.update(b"\0" + part.encode())
    for script in SCRIPTS:
        digest.update(b"\0" + script.read_bytes())
    return digest.hexdigest()


def write_layers(
    ctx: Path, root: Path, wheelhouse: Path, requirements: Path, ca_bundle: bytes, project_pins: list[str]
) -> str:
    """gpuci's layer and the project's dependencies into `ctx`; the hash of the wheels they carry."""
    digests, own = write_own_layer(ctx, root, wheelhouse, requirements, ca_bundle)
    digests += write_deps(ctx / PROJECT_LAYER / DEPS_IN_IMAGE, root, wheelhouse, project_pins, own)
    return hashlib.sha256(digests.encode()).hexdigest()


# gpuci's own layer as `gpuci init` writes it: the recipe's last two instructions.
OWN_STEPS = (f"COPY {GPUCI_LAYER}/ /opt/gpuci/", f"RUN python3 /opt/gpuci/{INSTALL_WHEELS.name} /opt/gpuci/build")


def before_own_steps(recipe_text: bytes) -> bytes | None:
    """The recipe without gpuci's own two steps, where they are its last instructions as written by
    `gpuci init` (gpuci then makes that layer itself, outside the builder); None for any other recipe."""
    lines = recipe_text.decode(errors="replace").splitlines(keepends=True)
    steps = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if len(steps) < 3 or tuple(lines[i].strip() for i in steps[-2:]) != OWN_STEPS:
        return None
    if lines[steps[-3]].rstrip().endswith("\\"):  # the COPY would be part of the instruction before
        return None
    return "".join(lines[: steps[-2]]).encode()


def checkout_dir(ctx: Path, install: ProjectInstall) -> Path:
    """Where the checkout's copy goes in the context: the project layer, at its workspace."""
    return ctx / PROJECT_LAYER / install.workspace.strip("/")


def project_steps(labels: dict[str, str], install: ProjectInstall | None, has_deps: bool) -> str:
    """The steps appended to a recipe with gpuci's own layer: the project's layer, labels first (a
    step on the small tree rather than after the big one)."""
    commands = [f"python3 /opt/gpuci/{INSTALL_WHEELS.name} /{DEPS_IN_IMAGE}"] if has_deps else []
    if install is not None:
        commands.append(install.install_command())
    if not commands:
        return label_line(labels)
    return (
        "\n# gpuci: the project's dependencies (gpuci.lock) and the project itself (editable at its workspace)\n"
        f"COPY {PROJECT_LAYER}/ /{label_line(labels)}"
        f"RUN set -e; {'; '.join(commands)}\n"
    )


def write_legacy(
    ctx: Path, root: Path, wheelhouse: Path, requirements: Path, ca_bundle: bytes, project_pins: list[str]
) -> str:
    """The one-layer context of a recipe from before gpuci's own layer; the hash of its wheels."""
    shutil.copyfile(requirements, ctx / "requirements.txt")
    (ctx / "project-requirements.txt").write_text("".join(f"{pin}\n" for pin in project_pins))
    (ctx / "extra-ca.crt").write_bytes(ca_bundle)
    shutil.copyfile(INSTALL_SCRIPT_SOURCE, ctx / INSTALL_SCRIPT)
    return copy_verified(root, wheelhouse, ctx / "wheelhouse")


def label_line(labels: dict[str, str]) -> str:
    """Every label in one LABEL instruction: the classic builder makes a step (a commit of the whole
    tree on some storage drivers) of each label passed through the API."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", " ") + '"'

    return "\nLABEL " + " ".join(f"{key}={quoted(value)}" for key, value in sorted(labels.items())) + "\n"
