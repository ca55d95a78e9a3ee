"""A step as a container workload: the image, the devices, mounts and environment, the run spec."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.console import say
from harness.errors import ImageBuildError
from harness.gpu.vram import sim as simgpu
from harness.run.buildkite import collector
from harness.run.buildkite.sharding import shard_args
from harness.run.cleanup.orphan import watch_env, watched_command
from harness.run.cleanup.reaper import dead_run_containers, project_id
from harness.run.deadline import deadline
from harness.run.environment import HARNESS_LIB, container_env, run_labels, visible_devices_env
from harness.run.mounts import project_mounts
from harness.run.options import SIM_MOUNT, RunOptions
from harness.run.run import Run
from harness.run.secrets import SECRETS_MOUNT, SOURCE_LINE, split_env, write_secrets
from harness.run.spec import REPORT_MOUNT
from harness.run.supervise.supervised import VramWatch
from harness.untrusted import private_dir

# Folders of the checkout that the host side reads or runs: never writable from a container.
STATE_FOLDERS = (".git", ".gpuci", ".nox")

if TYPE_CHECKING:  # Docker and YAML are imported only where used: host mode runs without them.
    from harness.declare.areas import Step
    from harness.run.container.docker import ContainerWorkload
    from harness.run.spec import BindMount, Limits


def reap_own_leftovers(client: Any, area: str, platform: str, project: str) -> None:
    """Containers of this session and project whose supervisor died (a SIGKILLed run); never a live
    run's, never another checkout's."""
    from harness.run.cleanup.reaper import clean

    leftovers = dead_run_containers(client, area, platform, project)
    if leftovers:
        say(f"removing {len(leftovers)} container(s) that crashed runs of this session left behind")
        for problem in clean(leftovers, client):
            say(f"could not clean up: {problem}")


def container_workload(run: Run, watch: VramWatch | None) -> ContainerWorkload:
    from harness.images.engine import connect

    options, area = run.options, run.area
    assert area is not None
    client = connect()
    reap_own_leftovers(client, area, options.platform, project_id(options.root))
    pin = contextlib.ExitStack()  # gc keeps off the image until the container exists
    try:
        image = image_for_run(client, run, pin)
        return _workload(run, watch, client, image, pin)
    except BaseException:
        pin.close()
        raise


def _workload(
    run: Run, watch: VramWatch | None, client: Any, image: str, pin: contextlib.ExitStack
) -> ContainerWorkload:
    from harness.gpu.devices import container_devices
    from harness.run.container.docker import ContainerWorkload
    from harness.run.spec import BindMount, RunSpec

    options, step, area, run_id = run.options, run.step, run.area, run.run_id
    assert step is not None and area is not None and run.outbox is not None
    mounts = [
        BindMount(str(options.root.resolve()), options.workspace),
        *guarded_state(options.root, options.workspace),
        BindMount(str(run.outbox.resolve()), REPORT_MOUNT),
        BindMount(str(Path(__file__).resolve().parents[1]), f"{HARNESS_LIB}/harness", read_only=True),
        *project_mounts(options.mounts, options.root, options.policy, options.host_mounts),
    ]
    extra_env = {"GPUCI_AREA": area, "GPUCI_STEP": step.label, "GPUCI_VRAM_GUARD": "1" if watch else "0"}
    if watch:  # the run's GPUs: xdist workers divide them instead of leasing against the run
        extra_env["GPUCI_RUN_GPUS"] = ",".join(d.id for d in watch.devices)
    if watch and watch.backend.name == "sim":
        mounts.append(BindMount(str(simgpu.default_directory().resolve()), SIM_MOUNT))
        # Simulated devices keep host numbering inside; NVIDIA's runtime renumbers what it passes.
        extra_env.update({simgpu.ENV: SIM_MOUNT, **visible_devices_env(options.platform, watch)})
    # The NVIDIA runtime's GPU request where the engine has it; CDI or raw nodes otherwise.
    has_runtime = options.platform != "cuda" or "nvidia" in (client.info().get("Runtimes") or {})
    devices = container_devices(options.platform, watch.devices if watch else [], has_runtime)
    run.report.devices = {
        "route": devices.route,
        "nodes": list(devices.nodes),
        "groups": list(devices.groups),
    }
    limits = step_limits(options, step)
    shards = shard_args(run.outbox, REPORT_MOUNT, f"{options.platform}_{area}", options.root)
    workdir = step.working_dir or options.default_working_dir or options.workspace
    timeout_s = run.timeout_s
    extra_env.update(watch_env(options.grace_s, timeout_s))
    if timeout_s:  # the plugin dumps a hanging test's stacks shortly before the stop
        extra_env["GPUCI_STEP_TIMEOUT_S"] = f"{timeout_s:g}"
        # The stop's time on the host's clock (a container shares it): a slow start inside the container
        # (a busy host) does not push the dump of a hanging test's stacks past the stop.
        extra_env["GPUCI_STEP_DEADLINE"] = f"{time.time() + timeout_s:.3f}"
    if collector.wanted():  # each test's result to Buildkite's Test Engine, by Buildkite's collector
        folder = collector.collector_folder(options.root, client, image)
        mounts.append(BindMount(str(folder), collector.MOUNT, read_only=True))
        extra_env.update({**collector.build_variables(), collector.FOLDER_ENV: collector.MOUNT})
        run.report.test_engine = {"collector": collector.COLLECTOR[0]}
    # The token, where set, is among pass_env (run/commands): a secret, through the secrets file.
    env, secret = split_env(
        {**container_env(step.env, options, run_id, extra_env, shards), **devices.env}, set(options.pass_env)
    )
    commands = list(step.commands)
    if secret:
        run.secrets = write_secrets(secret)
        mounts.append(BindMount(str(run.secrets), SECRETS_MOUNT, read_only=True))
        commands.insert(0, SOURCE_LINE)
    spec = RunSpec(
        image=image,
        command=watched_command("\n".join(commands)),
        watch_supervisor=True,
        name=f"gpuci-{run_id}",
        env=env,
        mounts=tuple(mounts),
        working_dir=workdir if workdir.startswith("/") else f"{options.workspace}/{workdir}",
        labels={
            "gpuci.run-id": run_id,
            "gpuci.area": area,
            "gpuci.step": step.label,
            "gpuci.platform": options.platform,
            **run_labels(options.root),
        },
        devices=devices.nodes,
        gpu_requests=devices.requests,
        group_add=devices.groups,
        user="0:0" if step.run_as_root else f"{os.getuid()}:{os.getgid()}",
        network_mode=limits.network,
        limits=limits,
    )
    run.report.spec = spec.to_report(run.redactor)
    return ContainerWorkload(client, spec, run.log_target(), pin)


def step_limits(options: RunOptions, step: Step) -> Limits:
    """The project's limits as the command resolved them (GPUCI_NETWORK over [tool.gpuci] network, by
    harness.declare.precedence) with the step's own in their place: a declared network wins."""
    from harness.run.spec import DEFAULT_PIDS_LIMIT, Limits

    declared = Limits(step.memory, step.cpus, step.pids_limit or DEFAULT_PIDS_LIMIT, step.network)
    return options.limits.under(declared)


def guarded_state(root: Path, workspace: str) -> list[BindMount]:
    """The checkout's folders the host trusts, read-only in the container: `.git` (its config and
    hooks run on the host), gpuci's state (runs, wheelhouse, image records) and nox's (the host
    runs its environments). Made first where missing, so the workload cannot plant them either."""
    from harness.run.spec import BindMount

    guarded = []
    for name in STATE_FOLDERS:
        path = root.resolve() / name
        if name != ".git" or not os.path.lexists(path):
            # A checkout with no .git of its own (an exported tree, a folder of a larger repository) gets
            # an empty one, read-only: else a step could make /workspace/.git, and the host's next git in
            # this folder would take its config (filters, hooks) for the repository's.
            private_dir(root, name)
        if os.path.lexists(path) and not os.path.islink(path):  # a linked .git is no repository of ours
            guarded.append(BindMount(str(path), f"{workspace.rstrip('/')}/{name}", read_only=True))
    return guarded


def _image_too_slow(seconds: float, tag: str) -> ImageBuildError:
    return ImageBuildError(
        f"the image {tag} took longer than {seconds:g} s to build or pull (image_timeout), so the run stopped "
        "before its step: publish the image once (`gpuci image publish`) and pull it on agents, or raise "
        "[tool.gpuci] image_timeout (at most 3600)."
    )


def image_for_run(client: Any, run: Run, pin: contextlib.ExitStack) -> str:
    """The run's image (pinned by a repro, else local, pulled or built) and what the report says of it:
    content tag, image ID and the registry's digest, so "the same image" means the same bytes. The
    image is pinned in `pin` from the moment it is found (harness/images/in_use.py); one removed by
    another process before that is looked for once more."""
    from harness.images import engine, in_use

    image_id = _find_image(client, run)
    pin.enter_context(in_use.pinned(image_id))
    if engine.image_id(client, image_id) is None:
        say(f"the image {image_id[:19]} was removed as this run found it (a clean-up of the engine): once more")
        pin.close()
        image_id = _find_image(client, run)
        pin.enter_context(in_use.pinned(image_id))
    _describe_image(client, run, image_id)
    return image_id


def _find_image(client: Any, run: Run) -> str:
    import time

    from harness.declare.pythons import builds_on_local_base
    from harness.images.build import resolved
    from harness.images.obtain import obtain
    from harness.images.recipe import recipe_for

    options = run.options
    started = time.monotonic()
    pinned = options.reproduction
    if pinned and pinned.image_id:
        image_id, recorded = pinned.image_id, dict(pinned.image_report)
        run.report.image = {**recorded, "id": image_id, "pinned": True}
    else:
        python = options.python or (
            options.project_python if builds_on_local_base(options.platform, options.base_image) else None
        )
        recipe = resolved(
            recipe_for(
                options.root, options.platform, options.base_image, options.ca_bundle, python, config=options.config
            ),
            options.root,
            client,
        )
        with deadline(options.image_timeout_s, lambda: _image_too_slow(options.image_timeout_s, recipe.tag)):
            image = obtain(client, recipe, options.root, options.registry, options.build)
        image_id = image.id
        run.report.image = {
            "tag": image.tag,
            "id": image.id,
            "built": image.built,
            "pulled": image.pulled,
            "repo_digest": image.repo_digest,
            "content_hash": image.content_hash,
            "base_image": recipe.build_args.get("BASE_IMAGE"),
            "resolved": list(recipe.pins),  # the project's resolution, in the tag (gpuci.lock)
        }
    run.report.timings = {"image_ensure_s": round(time.monotonic() - started, 6)}
    return image_id


def _describe_image(client: Any, run: Run, image_id: str) -> None:
    from harness.images import archive, manifest

    options = run.options
    said = run.report.image
    assert said is not None
    loaded = archive.loaded_from(options.root, image_id)
    if loaded:
        said["archive"] = {"file": loaded["file"], "sha256": loaded["sha256"]}
    said["packages"] = manifest.packages(client, image_id, options.root, {"gpuci.run-id": run.run_id})
