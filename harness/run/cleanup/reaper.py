"""Find and clean up what crashed or killed runs left on this host.

A run is live while its supervisor process is (matched by PID and start time, so a reused PID
does not count). Leftovers: containers with gpuci's labels whose supervisor is gone; processes
holding GPU memory that carry a dead run's id in their environment; lease files no process
holds. Processes of no gpuci run are listed as foreign holders and never killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.console import say
from harness.gpu.lease import lease_files
from harness.gpu.locks import is_locked, remove_if_unheld
from harness.gpu.vram.base import VramBackend
from harness.images import engine
from harness.untrusted import remove_tree

SUPERVISOR_PID_ENV = "GPUCI_SUPERVISOR_PID"
SUPERVISOR_START_ENV = "GPUCI_SUPERVISOR_START"
# Which checkout a run belongs to: reap and a run's own clean-up touch only their project's runs.
PROJECT_ENV = "GPUCI_PROJECT"
PROJECT_LABEL = "gpuci.project"


def project_id(root: Path) -> str:
    """A checkout's id: the hash of its resolved path (two clones of one repository are two projects)."""
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Leftover:
    kind: str  # container | holder | foreign-holder | lease-file
    id: str
    run_id: str | None
    detail: str


def supervisor_identity() -> dict[str, str]:
    """Labels and variables that let a later reaper tell whether this run is still alive."""
    from harness.owned import own_start_time

    return {"pid": str(os.getpid()), "start": f"{own_start_time():.2f}", "host": socket.gethostname()}


def identity(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """This process as a run's supervisor, and its project: as container labels, and as variables every
    workload process carries (for GPU holders that outlive a run), so a reaper can tell a live run from a
    crashed one, and its project's runs from others'."""
    me, project = supervisor_identity(), project_id(root)
    labels = {
        "gpuci.supervisor-pid": me["pid"],
        "gpuci.supervisor-start": me["start"],
        "gpuci.host": me["host"],
        PROJECT_LABEL: project,
    }
    return labels, {SUPERVISOR_PID_ENV: me["pid"], SUPERVISOR_START_ENV: me["start"], PROJECT_ENV: project}


def reap_own_leftovers(client: Any, area: str, platform: str, root: Path) -> None:
    """Containers of this session and project whose supervisor died (a SIGKILLed run); never a live
    run's, never another checkout's."""
    leftovers = dead_run_containers(client, area, platform, project_id(root))
    if leftovers:
        say(f"removing {len(leftovers)} container(s) that crashed runs of this session left behind")
        for problem in clean(leftovers, client):
            say(f"could not clean up: {problem}")


def supervisor_alive(pid: str | None, start: str | None) -> bool:
    import psutil  # here: a run's start needs none of it (harness.owned.own_start_time)

    if not pid or not pid.isdigit():
        return False
    try:
        process = psutil.Process(int(pid))
        return not start or abs(process.create_time() - float(start)) < 0.05
    except (psutil.NoSuchProcess, ValueError):
        return False


def dead_run_containers(
    client: Any,
    area: str | None = None,
    platform: str | None = None,
    project: str | None = None,
    labels: tuple[str, ...] = (),
) -> list[Leftover]:
    """Containers of runs whose supervisor is gone: of `project` only, unless it is None, and only
    those with every label in `labels`."""
    filters = ["gpuci.run-id", *labels]
    if project:
        filters.append(f"{PROJECT_LABEL}={project}")
    if area:
        filters.append(f"gpuci.area={area}")
    if platform:
        filters.append(f"gpuci.platform={platform}")
    found = []
    host = socket.gethostname()
    for container in engine.list_containers(client, filters):
        labels = container.labels
        if labels.get("gpuci.host", host) != host:
            continue  # another host's run, on a shared engine: not ours to judge
        if supervisor_alive(labels.get("gpuci.supervisor-pid"), labels.get("gpuci.supervisor-start")):
            continue
        detail = f"/{container.name} ({container.state})"
        found.append(Leftover("container", container.id[:12], labels.get("gpuci.run-id"), detail))
    return found


def _run_of(pid: int, project: str | None = None) -> tuple[str | None, bool]:
    """(run id, its supervisor alive) for a process started by a gpuci run; a run of another
    project than `project` counts as alive (not ours to judge)."""
    import psutil  # here: a run's start needs none of it (harness.owned.own_start_time)

    try:
        environ = psutil.Process(pid).environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None, False
    run_id = environ.get("GPUCI_RUN_ID")
    if run_id and project and environ.get(PROJECT_ENV) not in (None, project):
        return run_id, True
    return run_id, supervisor_alive(environ.get(SUPERVISOR_PID_ENV), environ.get(SUPERVISOR_START_ENV))


def stray_holders(backend: VramBackend, project: str | None = None) -> list[Leftover]:
    import psutil  # here: a run's start needs none of it (harness.owned.own_start_time)

    found = []
    for device in backend.devices():
        for holder in backend.holders(device):
            run_id, alive = _run_of(holder.pid, project)
            if run_id and alive:
                continue
            try:
                command = " ".join(psutil.Process(holder.pid).cmdline())[:120]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                command = "?"
            kind = "holder" if run_id else "foreign-holder"
            found.append(Leftover(kind, str(holder.pid), run_id, f"{device.id}: {holder.used_bytes} bytes, {command}"))
    return found


def orphaned_processes(already: set[int], project: str | None = None) -> list[Leftover]:
    """Processes a crashed run started (its id in their environment, its supervisor gone) that hold
    no GPU memory: a host-mode workload's children outlive a SIGKILLed supervisor too."""
    import psutil  # here: a run's start needs none of it (harness.owned.own_start_time)

    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.info["pid"] in already or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        run_id, alive = _run_of(proc.info["pid"], project)
        if not run_id or alive:
            continue
        try:
            command = " ".join(proc.cmdline())[:120]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found.append(Leftover("process", str(proc.info["pid"]), run_id, command))
    return found


def stale_leases() -> list[Leftover]:
    return [
        Leftover("lease-file", str(path), None, "no process holds it")
        for path in lease_files()
        if is_locked(path) is False
    ]


def _gone(client: Any, container_id: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not engine.container_exists(client, container_id):
            return True
        time.sleep(0.2)
    return False


def clean(leftovers: list[Leftover], client: Any) -> list[str]:
    """Remove containers, kill run holders, delete stale lease files; what could not be done."""
    problems = []
    for item in leftovers:
        if item.kind == "container" and client is not None:
            try:
                engine.remove_container(client, item.id)  # gone already: done
            except Exception as exc:  # reported, not raised: reap the rest
                # The engine may be removing it (its --rm after the kill): a problem only if it is
                # still there once that had time to finish.
                if not _gone(client, item.id, 10.0):
                    problems.append(f"container {item.id}: {exc}")
        elif item.kind == "lease-file":
            remove_if_unheld(Path(item.id))  # held by now: a new lease, not stale any more
        elif item.kind in ("build-folder", "secrets-folder"):
            remove_tree(Path(item.id))  # a build folder holds what the project's layer container wrote: any depth
        elif item.kind == "dangling-image" and client is not None:
            from harness.run.cleanup.gc import Garbage, remove_image

            problem = remove_image(client, Garbage(item.kind, item.id, 0, item.detail))
            if problem:
                problems.append(problem)
    holders = [int(i.id) for i in leftovers if i.kind in ("holder", "process")]
    for pid in holders:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    from harness.teardown.process_tree import wait_exited  # reap's own: a run's start needs none

    for pid in sorted(wait_exited(holders, 10.0)):
        problems.append(f"holder {pid} survived SIGKILL")
    return problems
