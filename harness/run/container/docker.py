"""Run a `RunSpec` through the Docker SDK: init process, labels, streamed and bounded logs."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
from docker.types import CancellableStream, DeviceRequest, LogConfig, Mount

from harness.errors import InfrastructureError, UsageError
from harness.run.cleanup import janitor
from harness.run.logs import LogTarget
from harness.run.spec import RunSpec

# Bounds what a flooding workload costs in Docker's own json log.
DOCKER_LOG_OPTS = {"max-size": "32m", "max-file": "2"}


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
        self.pump = log.pump()

    def start(self) -> None:
        try:
            self._start()
        finally:
            self.pin.close()

    def _start(self) -> None:
        spec = self.spec
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
# make the same requests as the SDK's, without the inspect.
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
