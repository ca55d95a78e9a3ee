"""A step as a container workload: obtain the image and the devices, plan (harness.run.plan), execute.

Only this module and the one it hands the spec to (harness.run.container.docker) talk to the engine;
what the run learns on the way (image, devices, spec) goes into its report here.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.console import say
from harness.errors import ImageBuildError
from harness.images.record import ImageRecord, ImageRequest
from harness.run.buildkite import collector
from harness.run.buildkite.sharding import shard_args
from harness.run.cleanup.reaper import dead_run_containers, project_id
from harness.run.deadline import deadline
from harness.run.plan import STATE_FOLDERS, RunDevices, plan
from harness.run.run import Run
from harness.run.secrets import SECRETS_MOUNT, write_secrets
from harness.run.spec import REPORT_MOUNT, BindMount, RunSpec
from harness.run.supervise.supervised import VramWatch
from harness.untrusted import private_dir

if TYPE_CHECKING:  # Docker is imported only where used: host mode runs without it.
    from harness.run.container.docker import ContainerWorkload


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
    """Obtain the image and the devices, plan the container, execute the plan."""
    from harness.images.engine import connect

    options, area = run.options, run.area
    assert area is not None and run.outbox is not None
    client = connect()
    reap_own_leftovers(client, area, options.platform, project_id(options.root))
    pin = contextlib.ExitStack()  # gc keeps off the image until the container exists
    try:
        image = image_for_run(client, run, pin)
        devices = devices_for_run(client, run, watch)
        prepare_state(options.root)
        shards = shard_args(run.outbox, REPORT_MOUNT, f"{options.platform}_{area}", options.root)
        folder = collector.collector_folder(options.root, client, image.id) if collector.wanted() else None
        if folder is not None:
            run.report.test_engine = {"collector": collector.COLLECTOR[0]}
        return execute(run, plan(run, image, devices, tuple(shards), folder), client, pin)
    except BaseException:
        pin.close()
        raise


def devices_for_run(client: Any, run: Run, watch: VramWatch | None) -> RunDevices:
    """The vendor's container options for the leased GPUs (device nodes, GPU requests, groups, variables)."""
    from harness.gpu.devices import container_devices

    # The platform's vendor's options; the engine's runtimes asked only by a vendor that needs them.
    devices = container_devices(
        run.options.platform, watch.devices if watch else [], lambda: tuple(client.info().get("Runtimes") or {})
    )
    run.report.devices = {"route": devices.route, "nodes": list(devices.nodes), "groups": list(devices.groups)}
    return RunDevices(watch, devices)


def execute(run: Run, spec: RunSpec, client: Any, pin: contextlib.ExitStack) -> ContainerWorkload:
    """The plan made real: the secrets' file written and mounted, the container's workload made."""
    from harness.run.container.docker import ContainerWorkload

    if spec.secret_env:
        run.secrets = write_secrets(spec.secret_env)
        spec = replace(spec, mounts=(*spec.mounts, BindMount(str(run.secrets), SECRETS_MOUNT, read_only=True)))
    run.report.spec = spec.to_report(run.redactor)
    return ContainerWorkload(client, spec, run.log_target(), pin)


def prepare_state(root: Path) -> None:
    """The checkout's state folders (harness.run.plan.STATE_FOLDERS), made where missing so the
    workload cannot plant them. A checkout with no .git of its own (an exported tree, a folder of a
    larger repository) gets an empty one, read-only: else a step could make /workspace/.git, and the
    host's next git in this folder would take its config (filters, hooks) for the repository's."""
    for name in STATE_FOLDERS:
        if name != ".git" or not os.path.lexists(root.resolve() / name):
            private_dir(root, name)


def _image_too_slow(seconds: float, tag: str) -> ImageBuildError:
    return ImageBuildError(
        f"the image {tag} took longer than {seconds:g} s to build or pull (image_timeout), so the run stopped "
        "before its step: publish the image once (`gpuci image publish`) and pull it on agents, or raise "
        "[tool.gpuci] image_timeout (at most 3600)."
    )


def image_for_run(client: Any, run: Run, pin: contextlib.ExitStack) -> ImageRecord:
    """The run's image, from the images stage (harness.images.obtain.for_run), bounded by image_timeout;
    recorded in the report at once, so a run that fails later still says which image it had."""
    from harness.declare.pythons import builds_on_local_base
    from harness.images.obtain import for_run

    options = run.options
    pinned = options.reproduction
    python = options.python or (
        options.project_python if builds_on_local_base(options.platform, options.base_image) else None
    )
    request = ImageRequest(
        options.root,
        options.platform,
        options.base_image,
        options.ca_bundle,
        python,
        options.registry,
        options.build,
        pinned_id=pinned.image_id if pinned else None,
        pinned_report=dict(pinned.image_report) if pinned else {},
        run_id=run.run_id,
        config=options.config,
    )
    seconds = options.image_timeout_s
    image = for_run(client, request, pin, lambda tag: deadline(seconds, lambda: _image_too_slow(seconds, tag)))
    run.report.image = image.to_report()
    run.report.timings = {"image_ensure_s": image.seconds}
    return image
