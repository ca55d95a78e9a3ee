"""Content-addressed images: the tag is a hash of the recipe, and a build happens only when it is missing.

The hash covers the Dockerfile, its build args, gpuci's requirements, the extra CA bundle, the
project's requirement files and declared requirements, what they resolved to (the lock's pins), the
project's install (workspace and metadata files) and the system layer's tag; the wheels are fixed by
the pins. The same recipe
gives the same tag on a laptop and on a CI agent, so a failure reproduces in the same image.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.declare.platforms import get_platform
from harness.declare.pythons import builds_on_local_base, suite_for
from harness.errors import UsageError
from harness.images.airgap import SUITE, BaseRecipe
from harness.images.context import SCRIPTS
from harness.images.layer_tar import BUILD_DIR_TIMES
from harness.images.lock import inputs_hash, lock_key, locked_pins
from harness.images.pip_lines import entry_refusal, refusal
from harness.images.project_install import BUILD_DIRS, INSTALL_SCRIPT_SOURCE, ProjectInstall, project_install
from harness.images.system_layer import SystemLayer
from harness.images.toolchain import system_packages

if TYPE_CHECKING:
    from harness.declare.config import ProjectConfig

CONTAINERS_DIR = Path("containers")
REQUIREMENTS = CONTAINERS_DIR / "requirements.txt"


@dataclass(frozen=True)
class ImageRecipe:
    platform: str
    dockerfile: Path
    requirements: Path
    build_args: dict[str, str] = field(default_factory=dict)
    ca_bundle: Path | None = None
    # The project's requirement or lock files ([tool.gpuci] requirements): a changed one is another image.
    project_requirements: tuple[Path, ...] = ()
    # Requirement lines of its extras and dependency groups ([tool.gpuci] extras, dependency_groups),
    # and of its own build backend and dependencies where it is installed.
    declared_requirements: tuple[str, ...] = ()
    # The project itself, installed editable in the image ([tool.gpuci] install); None: not installed.
    install: ProjectInstall | None = None
    # What the project's requirements resolved to for this image (harness.images.lock): in the tag.
    pins: tuple[str, ...] = ()
    # Debian packages on the base (its build's toolchain, [tool.gpuci] system_packages): the recipe
    # builds FROM this layer instead of the bare base.
    system_layer: SystemLayer | None = None
    # Resolved by this process (not read from the lock): the pins' wheels are in the wheelhouse already,
    # so the build does not resolve them again. Not part of the tag.
    fetched_here: bool = field(default=False, compare=False)
    # The Docker network mode of its build steps (build_network): how it is built, not what it holds,
    # so it is in neither the tag nor the comparison.
    network: str | None = field(default=None, compare=False)

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for name, data in (
            ("Dockerfile", project_bytes(self.dockerfile)),
            ("requirements.txt", project_bytes(self.requirements)),
            ("extra-ca.crt", self.ca_bundle.read_bytes() if self.ca_bundle else b""),
        ):
            digest.update(f"{name}\0{len(data)}\0".encode() + data)
        for path in self.project_requirements:
            data = project_bytes(path)
            digest.update(f"project\0{path.name}\0{len(data)}\0".encode() + data)
        for line in self.declared_requirements:
            digest.update(f"declared\0{line}\0".encode())
        for key in sorted(self.build_args):
            digest.update(f"arg\0{key}={self.build_args[key]}\0".encode())
        if self.install is not None:  # where it points and what its metadata is made from
            digest.update(f"install\0{self.install.workspace}\0{self.install.metadata_sha256}\0".encode())
            # gpuci's own install step (the lines it appends, its in-image script with the build-outputs
            # finder): a gpuci that installs differently builds a new image, never reuses the old one.
            digest.update(self.install.dockerfile_lines().encode() + INSTALL_SCRIPT_SOURCE.read_bytes())
            if self.install.backend in BUILD_DIRS:  # its build folder's layer keeps the build's times (layer_tar)
                digest.update(f"build-dir-times\0{BUILD_DIR_TIMES}\0".encode())
        for pin in self.pins:  # the resolution: a new release of an unpinned requirement is a new image
            digest.update(f"pin\0{pin}\0".encode())
        if self.system_layer is not None:
            digest.update(f"system\0{self.system_layer.tag}\0".encode())
        for script in SCRIPTS:  # gpuci's scripts that run in the build: what they do is in the image
            data = script.read_bytes()
            digest.update(f"script\0{script.name}\0{len(data)}\0".encode() + data)
        return digest.hexdigest()

    @property
    def lock_key(self) -> str:
        return lock_key(self.platform, self.base_image)

    @property
    def lock_inputs(self) -> str:
        """What the pins were resolved from: the requirements and, where the project is installed, its
        metadata files (its build backend is asked what the build needs: a changed setup.py may ask more)."""
        text = project_requirements_text(self)
        if self.install is not None:
            text += f"\0install\0{self.install.metadata_sha256}\0{self.system_layer.tag if self.system_layer else ''}"
        return inputs_hash(text, self.requirements)

    @property
    def tag(self) -> str:
        return f"gpuci/{self.platform}:{self.content_hash()[:16]}"

    @property
    def build_base(self) -> str | None:
        """The image the recipe's FROM takes: the system layer where there is one, else the base."""
        return self.system_layer.tag if self.system_layer else self.base_image

    @property
    def base_image(self) -> str | None:
        """The image the Dockerfile builds on: BASE_IMAGE as given, else the Dockerfile's default."""
        if self.build_args.get("BASE_IMAGE"):
            return self.build_args["BASE_IMAGE"]
        match = re.search(
            r"^ARG BASE_IMAGE=(\S+)|^FROM (\S+)", project_bytes(self.dockerfile).decode(errors="replace"), re.MULTILINE
        )
        return (match.group(1) or match.group(2)) if match else None

    @property
    def base_recipe(self) -> BaseRecipe | None:
        """The gpuci base this recipe builds on, as a recipe to bootstrap it (its suite is in its tag)."""
        base = self.local_base
        return BaseRecipe(suite=base.split(":", 1)[1].rsplit("-", 1)[0], ca_bundle=self.ca_bundle) if base else None

    @property
    def local_base(self) -> str | None:
        """The gpuci base image this recipe builds on, when it is one (made, not pulled)."""
        base = self.build_args.get("BASE_IMAGE", "")
        return base if base.startswith(BaseRecipe().tag.split(":")[0] + ":") else None


def recipe_for(
    root: Path,
    platform: str,
    base_image: str | None = None,
    ca_bundle: Path | None = None,
    python: str | None = None,
    *,
    config: ProjectConfig | None = None,
) -> ImageRecipe:
    """The recipe of a platform's image, from the settings the command resolved (`config`: its
    workspace, install, requirements, extras, groups and packages, and the pyproject.toml it read,
    which is not read again here; None: read them now, for a caller with no command, a test or a
    benchmark). With no base image named, cpu builds on the local
    Debian base (no registry needed) and cuda/rocm on the vendors' images (their Dockerfile
    defaults); GPUCI_BASE_IMAGE or --base-image overrides, e.g. `local` for the Debian base.
    `python` picks the Debian release the local base is made from (harness.declare.pythons); a
    vendor's base has its own Python, so asking one for a version is an error."""
    dockerfile = Path(root) / CONTAINERS_DIR / get_platform(platform).recipe / "Dockerfile"
    if not dockerfile.is_file():
        raise UsageError(f"{dockerfile} is missing: each platform's image recipe lives there.")
    for recipe_file in (dockerfile, Path(root) / REQUIREMENTS):
        # The checkout's own: a link to a host file would carry it into the build's output and image.
        if not recipe_file.resolve().is_relative_to(Path(root).resolve()):
            raise UsageError(
                f"{recipe_file} is a link out of the checkout; gpuci reads and builds the checkout's own recipe "
                "files only. Make it a file of the checkout."
            )
    if (Path(root) / REQUIREMENTS).is_file():  # pip fills the wheelhouse from it, and takes it as constraints
        check_pip_lines(Path(root) / REQUIREMENTS)
    if ca_bundle is not None and config is not None and config.set_by_project("ca_bundle"):
        # Checked again at each recipe: a step before this one may have made it a link to a host file.
        from harness.declare.config import in_checkout

        in_checkout(Path(root), str(ca_bundle.relative_to(root)) if ca_bundle.is_relative_to(root) else str(ca_bundle),
                    "ca_bundle")  # fmt: skip
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"CA bundle {ca_bundle} does not exist; pass a PEM file with --ca-bundle.")
    base_image = base_image or os.environ.get("GPUCI_BASE_IMAGE") or ("local" if platform == "cpu" else None)
    args = {}
    if python and not builds_on_local_base(platform, base_image):
        raise UsageError(
            f"Python {python} is asked for the {platform} image, but it builds on "
            f"{base_image or 'its Dockerfile base'}, which runs the Python it ships; give `--base-image local` "
            "(gpuci's Debian base, made for that Python) or drop the choice for this platform."
        )
    if base_image:
        local = BaseRecipe(suite=suite_for(python, "python") if python else SUITE, ca_bundle=ca_bundle)
        args["BASE_IMAGE"] = local.tag if base_image == "local" else base_image
    from harness.declare.config import load_config
    from harness.declare.project_deps import declared_requirements

    if config is None:
        config = load_config(Path(root), for_host=False)  # what the image holds is the project's alone

    declared = declared_requirements(Path(root), config.pyproject, config.extras, config.dependency_groups)
    install = project_install(Path(root), config.install, config.workspace, config.pyproject)
    if install is not None:
        declared += install.requirements
    recipe = ImageRecipe(
        platform,
        dockerfile,
        Path(root) / REQUIREMENTS,
        args,
        ca_bundle,
        _project_requirements(root, config.requirements),
        tuple(dict.fromkeys(declared)),
        install,
        network=build_network(config),
    )
    packages = system_packages(install.needs if install else None, config.packages_for(platform))
    if packages and recipe.base_image:
        why = install.needs.why if install and install.needs else "[tool.gpuci] system_packages"
        layer = SystemLayer(recipe.base_image, packages, why, recipe.network, config.origins.get("network"))
        recipe = replace(recipe, system_layer=layer)
    if not project_requirements_text(recipe).strip():
        return recipe  # nothing to resolve: gpuci's own pins are the whole set
    return replace(recipe, pins=locked_pins(Path(root), recipe.lock_key, recipe.lock_inputs) or ())


def build_network(config: ProjectConfig) -> str | None:
    """The network mode of every build step: the command's `network`, resolved once with every other
    setting (GPUCI_NETWORK, then [tool.gpuci] network; harness.declare.precedence). The project's value is
    held against the policy here too, so a config read without it (`for_host=False`: a bench, a test) is
    bounded by the safe defaults and a pull request's `network = "host"` never reaches a build."""
    from harness.declare.within_policy import check_limits

    if config.set_by_project("network"):
        check_limits(config.policy, lambda key: f"{config.origins[key]}: [tool.gpuci] {key}", network=config.network)
    return config.network


def _project_requirements(root: Path, names: tuple[str, ...]) -> tuple[Path, ...]:
    from harness.declare.config import in_checkout

    files = tuple(in_checkout(root, name, "requirements") for name in names)
    for path in files:
        if not path.is_file():
            raise UsageError(
                f"[tool.gpuci] requirements names {path}, which does not exist; fix the path in pyproject.toml."
            )
    return files


def project_bytes(path: Path) -> bytes:
    """A recipe file the project controls (its Dockerfile, requirement files): a regular file of at
    most 2 MiB, never read through a FIFO or a device; else a one-line error."""
    from harness.untrusted import PROJECT_FILE_LIMIT, Refused, read_capped

    try:
        return read_capped(path, PROJECT_FILE_LIMIT)
    except Refused as exc:
        raise UsageError(f"{exc}; an image's recipe files are regular files of at most 2 MiB.") from None


def check_pip_lines(path: Path) -> None:
    """A requirement file pip reads on the host holds names and versions only: else exit 2 at its line."""
    for number, line in enumerate(project_bytes(path).decode(errors="replace").splitlines(), 1):
        why = refusal(line)
        if why:
            raise UsageError(
                f"{path}:{number}: {line.strip()[:80]!r} is {why}; gpuci resolves names and versions from its "
                "own index and wheelhouse, and pip reads requirement files on the host, so requirement files "
                "hold only those (put index settings in pip's configuration on the host)."
            )


def project_requirements_text(recipe: ImageRecipe) -> str:
    """The project's requirements as one file for the image's build context (empty: none); a line
    pip would read as a pip option, a local or URL reference or a host variable (harness/images/pip_lines.py)
    is an error naming its file and line."""
    for path in recipe.project_requirements:
        if refusal(f"# {path.name}"):  # the name heads its part of the file pip reads
            raise UsageError(
                f"{path}: a requirement file whose name says `coding:` would make pip decode the file otherwise "
                "than gpuci reads it; rename it."
            )
        check_pip_lines(path)
    for line in recipe.declared_requirements:
        why = entry_refusal(line)
        if why:
            raise UsageError(
                f"pyproject.toml: the build backend, dependencies, extras or dependency groups gpuci installs hold "
                f"{line[:80]!r}, which is {why}; pip reads them on the host, so they hold names and versions only."
            )
    text = "".join(f"# {p.name}\n{project_bytes(p).decode(errors='replace')}\n" for p in recipe.project_requirements)
    if recipe.declared_requirements:
        text += "# pyproject.toml: [tool.gpuci] extras and groups, the build backend, the dependencies\n"
        text += "".join(f"{line}\n" for line in recipe.declared_requirements)
    return text
