"""Building a recipe's image when its content tag is missing, once per host (a lock)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import docker
import docker.errors

from harness.console import say
from harness.errors import ImageBuildError, InfrastructureError
from harness.gpu.locks import host_lock
from harness.images import engine, in_use
from harness.images.airgap import bootstrap_base, fill_wheelhouse, wheelhouse_dir
from harness.images.context import (
    DEPS_IN_IMAGE,
    GPUCI_LAYER,
    INSTALL_WHEELS,
    PROJECT_LAYER,
    before_own_steps,
    checkout_dir,
    is_legacy,
    label_line,
    own_layer_hash,
    project_steps,
    write_deps,
    write_layers,
    write_legacy,
    write_own_layer,
)
from harness.images.lock import write_pins
from harness.images.project_install import INSTALL_SCRIPT, OUTPUTS_DIR, copy_checkout
from harness.images.recipe import ImageRecipe, project_bytes, project_requirements_text
from harness.images.system_layer import BuildLines, ensure_layer, plain_lines, show
from harness.images.tag_record import TagRecord, agrees, remember
from harness.owned import make_owned_dir, remove_stale
from harness.untrusted import private_dir, remove_tree

# A build's context lives in the project's .gpuci/build, named by its process (harness/owned.py).
CONTEXT_PREFIX = "context-"
MAX_OUTPUT = 4 * 2**20  # of the build's output, kept to find the project's first error in

# The recipe an image was built from; a pulled image is used only where it agrees with the tag.
CONTENT_LABEL = "gpuci.content-hash"


def build_dir(root: Path) -> Path:
    return private_dir(root, ".gpuci", "build")


class ParentImageGone(InfrastructureError):
    """An image the build builds on was removed while it built, twice."""


@dataclass(frozen=True)
class EnsuredImage:
    tag: str
    id: str
    built: bool
    seconds: float
    content_hash: str
    pulled: bool = False
    # REPO@sha256:… when the image came from or went to a registry: the same digest is the same bytes.
    repo_digest: str | None = None


def existing(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def ensure(client: docker.DockerClient, recipe: ImageRecipe, root: Path) -> EnsuredImage:
    """The recipe's image, built only when its tag is missing."""
    started = time.monotonic()
    # Resolved now (not read from the lock): its wheels are in the wheelhouse already, fetch them once.
    fetched = recipe.fetched_here or (not recipe.pins and bool(project_requirements_text(recipe).strip()))
    recipe = resolved(recipe, root, client)  # the tag covers what the requirements resolved to
    content_hash = recipe.content_hash()
    tag = f"gpuci/{recipe.platform}:{content_hash[:16]}"
    image_id = existing(client, tag)
    if image_id and agrees(client, tag, image_id, content_hash, quiet=True):
        return EnsuredImage(tag, image_id, False, time.monotonic() - started, content_hash)
    # Two sessions missing the same tag build it once: the second waits and finds it. A tag on another
    # image than the one gpuci made there (harness.images.tag_record) is built again.
    with host_lock(f"build-{tag}"):
        image_id = existing(client, tag)
        if image_id and agrees(client, tag, image_id, content_hash):
            return EnsuredImage(tag, image_id, False, time.monotonic() - started, content_hash)
        built = _build_missing(client, recipe, root, content_hash, started, fetched)
        remember(client, TagRecord(tag, built.id, content_hash))
        return built


def _build_missing(
    client: docker.DockerClient, recipe: ImageRecipe, root: Path, content_hash: str, started: float, fetched: bool
) -> EnsuredImage:
    tag = f"gpuci/{recipe.platform}:{content_hash[:16]}"
    if recipe.base_recipe is not None:
        bootstrap_base(client, recipe.base_recipe)
    if recipe.system_layer is not None:
        ensure_layer(client, recipe.system_layer, Path(root) / "pyproject.toml")
    wheelhouse = wheelhouse_dir(Path(root))
    if os.environ.get("GPUCI_INSTALLER") != "pip":
        from harness.images.installer import fetch_uv

        fetch_uv(wheelhouse, recipe.ca_bundle, Path(root))  # first: the host's resolving uses it too
    fill_wheelhouse(recipe.requirements, wheelhouse, recipe.ca_bundle, Path(root))
    project = project_requirements_text(recipe)
    say(f"building {tag} from {recipe.dockerfile}")
    contexts = build_dir(Path(root))
    for stale in remove_stale(contexts, CONTEXT_PREFIX):
        say(f"removed the build context {stale.name} that a killed build left")
    ctx = make_owned_dir(contexts, CONTEXT_PREFIX)
    try:
        recipe_text = project_bytes(recipe.dockerfile)
        legacy = is_legacy(recipe_text)
        if recipe.install is not None:
            copied = copy_checkout(Path(root), ctx / "project" if legacy else checkout_dir(ctx, recipe.install))
            say(f"installing the project (editable at {recipe.install.workspace}, {copied} files) in {tag}")
            if recipe.install.needs is not None:
                say(
                    f"the project compiles ({recipe.install.needs.why}): its image has a compiler, and what its "
                    f"build writes into the workspace is kept in {OUTPUTS_DIR}, first on the import path"
                )
        pins: list[str] = list(recipe.pins) if fetched else []
        if project.strip() and not fetched:
            pins, _ = resolve_project(client, recipe, Path(root), Path(tempfile.mkdtemp(dir=ctx)), wheelhouse)
        ca = recipe.ca_bundle.read_bytes() if recipe.ca_bundle else b""
        labels = {CONTENT_LABEL: content_hash, "gpuci.platform": recipe.platform}
        if pins:
            labels["gpuci.resolved"] = ",".join(pins)[:60000]
        if recipe.install is not None:
            labels["gpuci.install"] = f"editable {recipe.install.workspace}"
        if not legacy and (pins or recipe.install is not None) and engine.is_local(client):
            _build_outside(client, recipe, Path(root), ctx, pins, labels)
            return _built(client, tag, content_hash, started)
        write = write_legacy if legacy else write_layers
        labels["gpuci.wheels-sha256"] = write(ctx, Path(root), wheelhouse, recipe.requirements, ca, pins)
        if legacy:
            steps = (recipe.install.dockerfile_lines() if recipe.install else "") + label_line(labels)
        else:
            steps = project_steps(labels, recipe.install, bool(pins))
        (ctx / "Dockerfile").write_bytes(recipe_text + steps.encode())
        build_in_context(client, ctx, tag, recipe, {}, Path(root))
    finally:
        # The project's layer container wrote folders of it (its /tmp, the stage): any depth (remove_tree).
        remove_tree(ctx)
    return _built(client, tag, content_hash, started)


def _built(client: docker.DockerClient, tag: str, content_hash: str, started: float) -> EnsuredImage:
    image_id = existing(client, tag)
    if image_id is None:
        raise ImageBuildError(f"the build of {tag} reported success but the image is missing.")
    seconds = time.monotonic() - started
    say(f"built {tag} in {seconds:.1f}s")
    return EnsuredImage(tag, image_id, True, seconds, content_hash)


def _build_outside(
    client: docker.DockerClient, recipe: ImageRecipe, root: Path, ctx: Path, pins: list[str], labels: dict[str, str]
) -> None:
    """gpuci's layer (shared, found by its tag), then the project's layer installed by a container into
    host folders and loaded (harness/images/project_layer.py)."""
    from harness.images.project_layer import build_layer, project_job  # a build's own: never a warm run's

    wheelhouse, own_ctx = wheelhouse_dir(root), ctx / "own"
    ca = recipe.ca_bundle.read_bytes() if recipe.ca_bundle else b""
    own_digests, own = write_own_layer(own_ctx, root, wheelhouse, recipe.requirements, ca)
    deps = ctx / PROJECT_LAYER / DEPS_IN_IMAGE if pins else None
    project_digests = write_deps(deps, root, wheelhouse, pins, own) if deps is not None else ""
    labels["gpuci.wheels-sha256"] = hashlib.sha256((own_digests + project_digests).encode()).hexdigest()
    env = {k: v for k, v in recipe.build_args.items() if k != "BASE_IMAGE"}
    # From finding gpuci's layer image to the project's layer over it: gc keeps off recipe images meanwhile.
    with in_use.building():
        own_id = _own_layer(client, recipe, root, own_ctx, (own_digests, ca))
        tag = f"gpuci/{recipe.platform}:{labels[CONTENT_LABEL][:16]}"
        build_layer(client, project_job(own_id, tag, labels, recipe.install, deps, env), ctx / PROJECT_LAYER, root)


def _own_layer(
    client: docker.DockerClient, recipe: ImageRecipe, root: Path, own_ctx: Path, made_of: tuple[str, bytes]
) -> str:
    """gpuci's layer's image id, made when its tag is missing: the recipe's steps by the engine's builder,
    and gpuci's own two steps (as `gpuci init` writes them, with no extra CA bundle to add to the base's)
    by a container and a load, as the project's layer; a recipe of any other form by the builder alone."""
    from harness.images.project_layer import GPUCI_DIR, build_layer, own_job

    own_digests, ca = made_of
    recipe_text = project_bytes(recipe.dockerfile)
    base = recipe.build_base or ""
    args = dict(recipe.build_args)
    made = own_layer_hash(recipe_text, args, (engine.image_id(client, base) if base else None) or base, own_digests)
    own_tag = f"gpuci/{recipe.platform}-recipe:{made[:16]}"
    own_id = existing(client, own_tag)
    if own_id is not None and agrees(client, own_tag, own_id, made):  # the image gpuci made under that tag
        say(f"gpuci's layer {own_tag} is here already")
        return own_id
    say(f"building gpuci's layer {own_tag} from {recipe.dockerfile}")
    head = None if ca.strip() else before_own_steps(recipe_text)
    steps_ctx = own_ctx if head is None else own_ctx / "steps"  # the recipe's other steps copy nothing of gpuci's
    steps_ctx.mkdir(exist_ok=True)
    (steps_ctx / "Dockerfile").write_bytes(recipe_text if head is None else head)
    steps_tag = own_tag if head is None else f"{own_tag}-steps"
    build_in_context(client, steps_ctx, steps_tag, recipe, {}, root)
    steps_id = existing(client, steps_tag)
    if steps_id is None:
        raise ImageBuildError(f"the build of {steps_tag} reported success but the image is missing.")
    if head is None:
        remember(client, TagRecord(own_tag, steps_id, made))
        return steps_id
    stage = own_ctx / "stage"
    for script in (INSTALL_WHEELS.name, INSTALL_SCRIPT):
        (stage / GPUCI_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(own_ctx / GPUCI_LAYER / script, stage / GPUCI_DIR / script)
    env = {k: v for k, v in args.items() if k != "BASE_IMAGE"}
    own_id = build_layer(client, own_job(steps_id, own_tag, own_ctx / GPUCI_LAYER / "build", env), stage, root)
    remember(client, TagRecord(own_tag, own_id, made))
    return own_id


def resolved(recipe: ImageRecipe, root: Path, client: docker.DockerClient | None = None) -> ImageRecipe:
    """The recipe with its project's resolution in it (and so in its tag): the lock's where it is
    fresh, else resolved now, for the base image's own Python, and written to the lock."""
    if recipe.pins or not project_requirements_text(recipe).strip():
        return recipe
    if client is None:
        from harness.images.engine import connect

        client = connect()
    if recipe.base_recipe is not None:
        bootstrap_base(client, recipe.base_recipe)  # asked which Python it runs
    if recipe.system_layer is not None and recipe.install is not None:  # its build backend is asked there
        ensure_layer(client, recipe.system_layer, Path(root) / "pyproject.toml")
    with tempfile.TemporaryDirectory(prefix="gpuci-resolve-") as scratch:
        pins, python = resolve_project(client, recipe, Path(root), Path(scratch), wheelhouse_dir(Path(root)))
    write_pins(Path(root), recipe.lock_key, recipe.lock_inputs, tuple(pins), python)
    return replace(recipe, pins=tuple(pins), fetched_here=True)


def resolve_project(
    client: docker.DockerClient, recipe: ImageRecipe, root: Path, ctx: Path, wheelhouse: Path
) -> tuple[list[str], str]:
    """The project's requirements resolved for the base image's own Python: the pins installed (the
    lock's, where the recipe has them: fetched, not resolved again), and that Python's version."""
    from harness.images.backend_requires import backend_requires
    from harness.images.resolve import ResolveWith, ask_image, resolve
    from harness.images.wheels import recording

    if recipe.base_image is None:
        raise ImageBuildError(f"{recipe.dockerfile} names no base image to ask which Python it runs.")
    target = ask_image(client, recipe.base_image)
    source = ctx / "project-requirements.in"
    text = "".join(f"{pin}\n" for pin in recipe.pins) or project_requirements_text(recipe)
    if not recipe.pins and recipe.install is not None:  # what the backend asks for beyond what is declared
        image = str(recipe.build_base)
        using = ResolveWith(wheelhouse, recipe.ca_bundle, recipe.requirements)
        asked = backend_requires(client, image, root, recipe.install, target, using)
        text += "# asked of the project's build backend (get_requires_for_build_wheel, _editable)\n"
        text += "".join(f"{line}\n" for line in asked)
    source.write_text(text)
    files = [*recipe.project_requirements, *([root / "pyproject.toml"] if recipe.declared_requirements else [])]
    sources = tuple(p.relative_to(root) if p.is_relative_to(root) else p for p in files)
    with recording(root, wheelhouse):
        resolution = resolve(
            source, tuple(root / s for s in sources), wheelhouse, target, recipe.ca_bundle, recipe.requirements
        )
    # Said once a build: where the lock's pins are only fetched (a fresh wheelhouse), not as a resolution.
    done = "fetched gpuci.lock's" if recipe.pins else "resolved"
    say(f"{done} {len(resolution.pins)} package(s) for Python {target.version}: {', '.join(resolution.pins)[:300]}")
    return list(resolution.pins), target.version


def build_in_context(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    recipe: ImageRecipe,
    labels: dict[str, str],
    root: Path | None = None,
) -> None:
    """Build, holding the host's build lock and a pin on the base image (harness/images/in_use.py:
    gc and reap keep off both). A build whose parent image vanished meanwhile (a clean-up of the
    engine by another tool or host) is built once more, on its base made again where gpuci makes it;
    twice is infrastructure (exit 75)."""
    base = recipe.base_image
    dockerfile = Path(context) / "Dockerfile"
    if labels and dockerfile.is_file():  # one LABEL step for all (see context.label_line), not one per label
        with open(dockerfile, "a") as out:
            out.write(label_line({"gpuci.platform": recipe.platform, **labels}))
        labels = {}
    for attempt in (1, 2):
        base_id = engine.image_id(client, base) if base else None
        if attempt == 2 and base and base_id is None:  # not made again: nothing to build on
            raise ParentImageGone(_orphaned_message(tag, f"{base} is gone"))
        with in_use.building(), in_use.pinned(base_id) if base_id else contextlib.nullcontext():
            try:
                _build(client, context, tag, recipe, labels, root)
                return
            except ImageBuildError as exc:
                if not orphaned(client, str(exc), base_id):
                    raise
                if attempt == 2:
                    raise ParentImageGone(_orphaned_message(tag, str(exc))) from None
                say(f"the image {tag} builds on was removed while it built ({exc}): building it once more")
        if recipe.base_recipe is not None:
            bootstrap_base(client, recipe.base_recipe)  # made again if it was the one removed


def _orphaned_message(tag: str, cause: str) -> str:
    return (
        f"building {tag} failed twice because an image it builds on was removed while it built ({cause}). "
        "Another process is cleaning this Docker Engine (a `docker image prune`, or a clean-up on another "
        "host that shares it): keep such clean-ups off images younger than a build (`gpuci gc` does) and "
        "run again; CI retries exit 75."
    )


# The engine's words when a parent layer or the base vanished mid-build (classic builder and BuildKit).
ORPHANED = ("unknown parent image", "failed to set parent", "failed to get digest", "No such image")


def orphaned(client: docker.DockerClient, error: str, base_id: str | None) -> bool:
    """Whether a build failed because an image it builds on vanished (not because of the recipe)."""
    if base_id and engine.image_id(client, base_id) is None:
        return True
    return any(text in error for text in ORPHANED)


def _build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    recipe: ImageRecipe,
    labels: dict[str, str],
    root: Path | None = None,
) -> None:
    # A build's own modules, imported only when something is built: a warm run never needs them.
    from harness.images.build_auth import granted_credentials, granted_hosts, ungranted_pull
    from harness.images.build_errors import project_failure

    args = dict(recipe.build_args)
    if recipe.system_layer is not None:
        args["BASE_IMAGE"] = recipe.system_layer.tag
    try:
        with granted_credentials(client, granted_hosts(root)):  # the request carries them: the call is enough
            stream = client.api.build(
                path=str(context),
                tag=tag,
                buildargs=args,
                labels=labels or None,
                rm=True,
                forcerm=True,
                decode=True,
                pull=False,
                network_mode=recipe.network or None,  # the command's setting (every recipe step is offline)
            )
        output, shown = "", BuildLines()
        for chunk in stream:
            if "error" in chunk:
                show(shown.end())
                # The project's own build failing is exit 2 (where the checkout is known to name its files).
                mine = project_failure(plain_lines(output), root, recipe.install) if root else None
                if mine is not None:
                    raise mine
                raise ungranted_pull(chunk["error"], recipe.dockerfile) or ImageBuildError(
                    f"building {tag} from {recipe.dockerfile} failed: {chunk['error'].strip()}"
                )
            text = chunk.get("stream", "")
            output = (output + text)[-MAX_OUTPUT:]
            show(shown.feed(text))
        show(shown.end())
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"building {tag} failed: {exc.explanation or exc}") from None
