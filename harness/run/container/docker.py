"""The container backend: a step's image obtained, its container planned (harness.run.plan) and made
ready through the Docker SDK (init process, labels, streamed and bounded logs). `prepare` answers the
run with a `ContainerPart`: the workload to start and what the report says of it, which the caller
records; only this module and the images stage talk to the engine.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import CancellableStream, DeviceRequest, LogConfig, Mount

from harness.errors import ImageBuildError, InfrastructureError, UsageError
from harness.gpu.for_run import RunDevices, for_container
from harness.gpu.vram.release import VramWatch
from harness.images.record import ImageRecord, ImageRequest
from harness.run.buildkite import collector
from harness.run.buildkite.sharding import shard_args
from harness.run.cleanup import janitor
from harness.run.cleanup.reaper import reap_own_leftovers
from harness.run.deadline import deadline
from harness.run.logs import LogTarget
from harness.run.plan import STATE_FOLDERS, plan
from harness.run.run import Run
from harness.run.secrets import SECRETS_MOUNT, remove_secrets, write_secrets
from harness.run.spec import REPORT_MOUNT, BindMount, RunSpec
from harness.untrusted import private_dir

# Bounds what a flooding workload costs in Docker's own json log.
DOCKER_LOG_OPTS = {"max-size": "32m", "max-file": "2"}


@dataclass(frozen=True)
class ContainerPart:
    """What the container backend made ready: the workload to start, and its part of the report (the
    image, the devices, the spec, whether Test Engine's collector is mounted). `secrets` is the private
    folder of the secrets file the container sources: the caller removes it when the run ends."""

    workload: ContainerWorkload
    image: ImageRecord
    devices: RunDevices
    spec: RunSpec
    secrets: Path | None = None
    test_engine: bool = False


def prepare(run: Run, watch: VramWatch | None) -> ContainerPart:
    """Obtain the image and the devices, plan the container, execute the plan: a workload ready to start."""
    from harness.images.engine import connect

    options, area = run.options, run.area
    assert area is not None and run.outbox is not None
    client = connect()
    reap_own_leftovers(client, area, options.platform, options.root)
    pin = contextlib.ExitStack()  # gc keeps off the image until the container exists
    secrets = None
    try:
        # The platform's vendor's options (the engine's runtimes asked only by a vendor that needs them),
        # before the image: a host that cannot pass the GPUs fails before a build.
        devices = for_container(options.platform, watch, lambda: tuple(client.info().get("Runtimes") or {}))
        image = _image(client, run, pin)
        prepare_state(options.root)
        share = run.ci.parallel_share
        session = f"{options.platform}_{area}"
        shards = shard_args(run.outbox, REPORT_MOUNT, session, options.root, share) if share[1] > 1 else []
        folder = collector.collector_folder(options.root, client, image.id) if run.ci.test_engine else None
        spec = plan(run, image, devices, tuple(shards), folder)
        if spec.secret_env:  # the plan made real: the secrets' file written and mounted
            secrets = write_secrets(spec.secret_env)
            spec = replace(spec, mounts=(*spec.mounts, BindMount(str(secrets), SECRETS_MOUNT, read_only=True)))
        log = LogTarget(run.directory / "output.log", run.redactor, echo=options.echo)
        workload = ContainerWorkload(client, spec, log, pin)
        return ContainerPart(workload, image, devices, spec, secrets, test_engine=folder is not None)
    except BaseException:
        pin.close()
        remove_secrets(secrets)
        raise


def prepare_state(root: Path) -> None:
    """The checkout's state folders (harness.run.plan.STATE_FOLDERS), made where missing so the
    workload cannot plant them. A checkout with no .git of its own (an exported tree, a folder of a
    larger repository) gets an empty one, read-only: else a step could make /workspace/.git, and the
    host's next git in this folder would take its config (filters, hooks) for the repository's."""
    for name in STATE_FOLDERS:
        if name != ".git" or not os.path.lexists(root.resolve() / name):
            private_dir(root, name)


def remove_crashed_containers(run_ids: set[str]) -> None:
    """The containers of crashed runs whose GPUs this run leased (harness.gpu.handoff)."""
    from harness.images import engine

    try:
        client = engine.connect(timeout=10)
    except Exception:  # no engine: nothing of a crashed run can be in a container here
        return
    for run_id in run_ids:
        for container in engine.list_containers(client, [f"gpuci.run-id={run_id}"]):
            with contextlib.suppress(Exception):  # the engine is removing it already
                engine.remove_container(client, container.id)


def _image_too_slow(seconds: float, tag: str) -> ImageBuildError:
    return ImageBuildError(
        f"the image {tag} took longer than {seconds:g} s to build or pull (image_timeout), so the run stopped "
        "before its step: publish the image once (`gpuci image publish`) and pull it on agents, or raise "
        "[tool.gpuci] image_timeout (at most 3600)."
    )


def _image(client: Any, run: Run, pin: contextlib.ExitStack) -> ImageRecord:
    """The run's image, from the images stage (harness.images.obtain.for_run), bounded by image_timeout."""
    from harness.images.obtain import for_run

    options = run.options
    pinned = options.reproduction
    request = ImageRequest(
        options.root,
        options.platform,
        options.base_image,
        options.ca_bundle,
        options.python,  # the step's, as the request resolved it
        build=options.build,
        pinned_id=pinned.image_id if pinned else None,
        pinned_report=dict(pinned.image_report) if pinned else {},
        run_id=run.run_id,
        config=options.config,
    )
    seconds = float(options.config.image_timeout)
    return for_run(client, request, pin, lambda tag: deadline(seconds, lambda: _image_too_slow(seconds, tag)))


class ContainerWorkload:
    """One container's life: create, start, wait, signal, remove."""

    def __init__(
        self, client: docker.DockerClient, spec: RunSpec, log: LogTarget, pin: contextlib.ExitStack | None = None
    ) -> None:
        self.client, self.spec = client, spec
        self.container: Any = None
        # Keeps gc off the image until the container exists (the engine keeps it from then on).
        self.pin = pin or contextlib.ExitStack()
        self._stdin: Any = None
        self._janitor: Any = None  # harness.run.cleanup.janitor: the host's clock for this container
        self.log = log
        self.pump: Any = None  # the log's pump, made as the container starts

    def start(self) -> None:
        try:
            self._start()
        finally:
            self.pin.close()

    def _start(self) -> None:
        spec = self.spec
        self.pump = self.log.pump()
        try:
            # The low-level create: one request. The SDK's `containers.create` inspects the new container
            # after it, and nothing here reads what that inspect says.
            api = self.client.api
            created = api.create_container(
                spec.image,
                list(spec.command),
                name=spec.name,
                environment=spec.env,
                working_dir=spec.working_dir,
                labels=spec.labels,
                user=spec.user,
                # detach=False with stdin_open is Docker's StdinOnce: stdin closes when we disconnect.
                stdin_open=spec.watch is not None,
                detach=spec.watch is None,
                host_config=api.create_host_config(**_host_config(spec)),
            )
            self.container = self.client.containers.prepare_model({"Id": created["Id"]})
            if spec.watch is not None:
                # Held for the container's life; the kernel closes it if this process dies.
                self._stdin = self.container.attach_socket(params={"stdin": 1, "stream": 1})
                # The watcher inside can be killed by the step; the janitor on the host cannot.
                self._janitor = janitor.start(self.container.id, spec.watch.stop.grace_s, spec.watch.deadline_s)
            # Attached before the start: the output comes straight from the container, every byte, at
            # the pace gpuci reads it. Following Docker's json log instead lost everything past the
            # first rotation when the workload wrote faster than that (19 MB of a 100 MB step).
            output = _attach_output(self.client.api, self.container.id)
            self.container.start()
        except docker.errors.ImageNotFound:
            self.remove()
            raise InfrastructureError(f"image {spec.image} is missing from the Docker Engine.") from None
        except docker.errors.APIError as exc:
            self.remove()
            if exc.status_code == 400:  # Docker rejects what it was asked (a name, a mount): a retry cannot help
                raise UsageError(
                    f"Docker refused the container {spec.name}: {exc.explanation or exc}. Fix the step or "
                    "[tool.gpuci] setting it names."
                ) from None
            raise InfrastructureError(f"starting container {spec.name} failed: {exc.explanation or exc}") from None
        self.pump.start(self._logs(output))

    def _logs(self, output: Iterator[bytes]) -> Iterator[bytes]:
        received = b""
        for chunk in output:
            received = (received + chunk)[-65536:]
            yield chunk
        # A last line without a newline can be missed when the container exits as the stream ends
        # (`printf done` in a fast step): ask for the last line once more.
        tail = _last_line(self.client.api, self.container.id)
        if tail and not tail.endswith(b"\n") and not received.endswith(tail):
            yield tail

    def wait(self) -> int:
        """Block until the container exits; its exit code."""
        result = self.container.wait()
        return int(result.get("StatusCode", -1))

    def signal(self, signum: int) -> None:
        with contextlib.suppress(docker.errors.APIError):  # already exited: nothing to signal
            self.container.kill(signal=signal.Signals(signum).name)

    def host_pids(self) -> set[int]:
        """Host PIDs of the container's processes (empty once it has stopped)."""
        try:
            top = self.container.top(ps_args="-o pid")
        except docker.errors.APIError:
            return set()
        return {int(row[0]) for row in top.get("Processes") or [] if row and row[0].isdigit()}

    def remove(self) -> bool:
        """Remove the container (force) once its log stream has ended; True when it is gone."""
        self.pin.close()
        if self.pump is not None:
            self.pump.join(timeout=30)
        if self._stdin is not None:
            with contextlib.suppress(Exception):
                self._stdin.close()
            self._stdin = None
        if self.container is None:
            try:
                self.container = self.client.containers.get(self.spec.name)
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError:
                return False
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            return False
        janitor.release(self._janitor)  # only once the container is gone: else the janitor stays on guard
        self._janitor = None
        return True


def _host_config(spec: RunSpec) -> dict[str, Any]:
    """The engine's HostConfig for a spec, as `create_host_config` names it."""
    return {
        "mounts": [Mount(m.target, m.source, type="bind", read_only=m.read_only) for m in spec.mounts],
        "devices": list(spec.devices),
        "device_requests": [
            DeviceRequest(driver=r.driver, device_ids=list(r.device_ids), capabilities=[list(r.capabilities)])
            for r in spec.gpu_requests
        ],
        "group_add": list(spec.group_add),
        "shm_size": spec.shm_size,
        "network_mode": spec.network_mode,
        "security_opt": ["no-new-privileges:true"] if spec.no_new_privileges else None,
        "cap_drop": ["ALL"],
        "cap_add": list(spec.cap_add),
        "pids_limit": spec.limits.pids,
        "mem_limit": spec.limits.memory,
        "nano_cpus": int(spec.limits.cpus * 1e9) if spec.limits.cpus else None,
        # PID 1 ignores SIGTERM unless it installs a handler: an init forwards it.
        "init": True,
        "log_config": LogConfig(type="json-file", config=DOCKER_LOG_OPTS),
    }


# gpuci's containers never have a TTY (nothing sets one): their output is always multiplexed. The SDK's
# `attach` and `logs` inspect the container to learn that, one request each on every run; these two
# make the same requests as the SDK's, without the inspect, with the SDK's own helpers (docker-py 7's private
# `_post`, `_read_from_socket`, `_get_result_tty`: pyproject.toml pins docker below 8).
def _attach_output(api: Any, container_id: str) -> Iterator[bytes]:
    """The container's stdout and stderr as they come, attached before it starts (no past logs)."""
    response = api._post(
        api._url("/containers/{0}/attach", container_id),
        headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        params={"logs": 0, "stdout": 1, "stderr": 1, "stream": 1},
        stream=True,
    )
    return CancellableStream(api._read_from_socket(response, True, False), response)


def _last_line(api: Any, container_id: str) -> bytes:
    """The last line of the container's log (stdout and stderr)."""
    response = api._get(
        api._url("/containers/{0}/logs", container_id),
        params={"stdout": 1, "stderr": 1, "timestamps": 0, "follow": 0, "tail": 1},
    )
    return bytes(api._get_result_tty(False, response, False))


def docker_run_args(spec: RunSpec, command: list[str]) -> list[str]:
    """The `docker run` command line equivalent to a RunSpec (for an interactive shell)."""
    args = ["docker", "run", "--rm", "-it", "--init", "--name", f"{spec.name}-shell", "-w", spec.working_dir]
    args += ["--shm-size", spec.shm_size]
    if spec.network_mode:
        args += ["--network", spec.network_mode]
    if spec.no_new_privileges:
        args += ["--security-opt", "no-new-privileges:true"]
    args += ["--cap-drop", "ALL", *(arg for cap in spec.cap_add for arg in ("--cap-add", cap))]
    args += ["--pids-limit", str(spec.limits.pids)]
    if spec.limits.memory:
        args += ["--memory", spec.limits.memory]
    if spec.limits.cpus:
        args += ["--cpus", str(spec.limits.cpus)]
    if spec.user:
        args += ["--user", spec.user]
    for key, value in spec.env.items():
        args += ["-e", f"{key}={value}"]
    for mount in spec.mounts:
        args += ["-v", f"{mount.source}:{mount.target}{':ro' if mount.read_only else ''}"]
    for key, value in spec.labels.items():
        args += ["--label", f"{key}={value}"]
    for node in spec.devices:
        args += ["--device", node]
    for group in spec.group_add:
        args += ["--group-add", group]
    for request in spec.gpu_requests:
        if request.driver == "cdi":
            args += [arg for name in request.device_ids for arg in ("--device", name)]
        else:
            args += ["--gpus", f"device={','.join(request.device_ids)}"]
    return [*args, spec.image, *command]


def interactive_shell(spec: RunSpec) -> int:
    import subprocess

    from harness.run.secrets import SECRETS_MOUNT

    # The shell reads the step's secrets the way its commands would, from the mounted file.
    has_secrets = any(m.target == SECRETS_MOUNT for m in spec.mounts)
    return subprocess.call(
        docker_run_args(spec, ["bash", "--rcfile", f"{SECRETS_MOUNT}/env"] if has_secrets else ["bash"])
    )
