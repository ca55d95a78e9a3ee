"""A step's container planned before it is made: `plan(run, image, devices) -> RunSpec`.

The plan decides the mounts, devices, environment, limits, labels, which variables are secrets, and
the watcher's orders, from what the run was asked (its request: the mounts within the host policy, the
stop policy) and what was obtained for it (the image, the GPUs' container options, the shard arguments
and the Test Engine collector's folder). It talks to no engine and writes nothing: executing the spec
(harness.run.container.docker) does.

The watcher: a step's container outlives its supervisor by at most its grace, with nothing else to run
(no reaper, no next job). The supervisor holds the container's stdin open through an attach (Docker's
StdinOnce: stdin closes when that one client disconnects). The watcher, started before the step's
commands, reads it; when the supervisor dies (SIGKILL, OOM, a lost agent) the kernel closes its socket,
the watcher reads end-of-file at once and stops every process of the container: the policy's first
signal, the run's grace, its second. It also stops them at the step's own deadline (its timeout, plus
the grace and a margin), should the end-of-file never come. Worst case: the grace plus about a second.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from harness.declare.mounts import BindMount, still_as_resolved
from harness.declare.stop_policy import StopPolicy
from harness.gpu.for_run import RunDevices
from harness.redact import is_secret, looks_like_credential
from harness.run.buildkite import collector
from harness.run.cleanup.reaper import identity
from harness.run.options import PYTEST_PLUGIN_ARGS, RunOptions
from harness.run.run import Run
from harness.run.secrets import SOURCE_LINE
from harness.run.spec import DEFAULT_PIDS_LIMIT, REPORT_MOUNT, Limits, RunSpec, Watch

if TYPE_CHECKING:
    from harness.declare.areas import Step
    from harness.images.record import ImageRecord

# Folders of the checkout that the host side reads or runs: never writable from a container.
STATE_FOLDERS = (".git", ".gpuci", ".nox")
# gpuci's own package, mounted read-only in every run's container for its pytest plugin.
HARNESS_PACKAGE = Path(__file__).resolve().parents[1]  # harness/run/plan.py: harness/
HARNESS_LIB = "/opt/gpuci/lib"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# $1 is the step's script. fd 3 keeps the attached stdin for the watcher; the step gets /dev/null.
# The grace and the deadline come in the environment (`watch_env`), the signals from the run's
# StopPolicy: the watcher keeps no number of its own.
WATCH_SCRIPT = r"""exec 3<&0 0</dev/null
(
  if [ -n "${{GPUCI_DEADLINE_S:-}}" ]; then read -r -t "$GPUCI_DEADLINE_S" -u 3 _ || true
  else read -r -u 3 _ || true; fi
  echo "gpuci: the supervisor is gone (or the step's deadline passed); stopping the container" >&2
  kill -{ask} -1 2>/dev/null; sleep "$GPUCI_GRACE_S"; kill -{force} -1 2>/dev/null
) &
exec bash -ec "$1" 3<&-
"""
# Past the step's timeout the supervisor stops it itself; the watcher's deadline is the backstop.
DEADLINE_MARGIN_S = 30.0


def plan(
    run: Run,
    image: ImageRecord,
    devices: RunDevices,
    shards: tuple[str, ...] = (),
    collector_at: Path | None = None,
) -> RunSpec:
    """The step's container, decided: what `ContainerWorkload` makes and the report's `spec` says."""
    options, step, area, run_id = run.options, run.step, run.area, run.run_id
    assert step is not None and area is not None and run.outbox is not None
    config, watch = options.config, devices.watch
    labels, supervisor_env = identity(options.root)
    mounts = [
        BindMount(str(options.root.resolve()), config.workspace),
        *state_mounts(options.root, config.workspace),
        BindMount(str(run.outbox.resolve()), REPORT_MOUNT),
        BindMount(str(HARNESS_PACKAGE), f"{HARNESS_LIB}/harness", read_only=True),
        *still_as_resolved(options.binds),  # as the request resolved them: no step made a link of one since
        *(BindMount(source, target) for source, target in devices.mounts),
    ]
    extra_env = {"GPUCI_AREA": area, "GPUCI_STEP": step.label, "GPUCI_VRAM_GUARD": "1" if watch else "0"}
    if watch:  # the run's GPUs: xdist workers divide them instead of leasing against the run
        extra_env["GPUCI_RUN_GPUS"] = ",".join(d.id for d in watch.devices)
    extra_env.update(devices.env)
    timeout_s = run.timeout_s
    orders = watch_for(run.stop_policy, timeout_s)
    extra_env.update(watch_env(orders))
    if timeout_s:  # the plugin dumps a hanging test's stacks shortly before the stop
        extra_env["GPUCI_STEP_TIMEOUT_S"] = f"{timeout_s:g}"
        # The stop's time on the host's clock (a container shares it): a slow start inside the container
        # (a busy host) does not push the dump of a hanging test's stacks past the stop.
        extra_env["GPUCI_STEP_DEADLINE"] = f"{time.time() + timeout_s:.3f}"
    if collector_at is not None:  # each test's result to Buildkite's Test Engine, by Buildkite's collector
        mounts.append(BindMount(str(collector_at), collector.MOUNT, read_only=True))
        extra_env.update({**collector.build_variables(), collector.FOLDER_ENV: collector.MOUNT})
    extra_env.update(supervisor_env)
    env = {**container_env(step.env, options, run_id, extra_env, list(shards)), **devices.options.env}
    for name, value in devices.guard:  # set last, over the step's `env` and the image's ENV
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    # The token, where set, is among pass_env (the request's): a secret, through the secrets file.
    env, secret = split_env(env, set(options.pass_env))
    commands = [SOURCE_LINE, *step.commands] if secret else list(step.commands)
    limits = step_limits(options, step)
    workdir = step.working_dir or config.default_working_dir or config.workspace
    return RunSpec(
        image=image.id,
        command=watched_command("\n".join(commands), orders),
        watch=orders,
        name=f"gpuci-{run_id}",
        env=env,
        secret_env=secret,
        mounts=tuple(mounts),
        working_dir=workdir if workdir.startswith("/") else f"{config.workspace}/{workdir}",
        labels={
            "gpuci.run-id": run_id,
            "gpuci.area": area,
            "gpuci.step": step.label,
            "gpuci.platform": options.platform,
            **labels,
        },
        devices=devices.options.nodes,
        gpu_requests=devices.options.requests,
        group_add=devices.options.groups,
        user="0:0" if step.run_as_root else f"{os.getuid()}:{os.getgid()}",
        network_mode=limits.network,
        limits=limits,
    )


def container_env(
    step_env: dict[str, str], options: RunOptions, run_id: str, extra: dict[str, str], shards: list[str]
) -> dict[str, str]:
    workspace = options.config.workspace
    addopts = [f"--junitxml={REPORT_MOUNT}/junit.xml", *PYTEST_PLUGIN_ARGS, *shards, *options.pytest_args]
    env = {
        "HOME": "/tmp",
        # The checkout (and its src/ layout), then gpuci's own package for the plugin: mounted read-only
        # there, so a repository that is not gpuci's runs gpuci's plugin without installing it.
        "PYTHONPATH": f"{workspace}:{workspace}/src:{HARNESS_LIB}",
        "GPUCI_RUN_ID": run_id,
        "GPUCI_PLATFORM": options.platform,
        "GPUCI_REPORT_DIR": REPORT_MOUNT,
        "GPUCI_IN_CONTAINER": "1",
        "PYTEST_ADDOPTS": shlex.join(addopts),
        **extra,
        **step_env,
    }
    for name in options.pass_env:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def split_env(env: Mapping[str, str], passed: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(variables fit for the container's configuration, secrets that go through the file: harness.run.secrets)."""
    public: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in env.items():
        # gpuci's own GPUCI_ variables stay in the configuration (the watcher reads them before the file
        # is sourced), but never one the host passed: that is the host's secret, whatever its name.
        passed_here = name in passed
        wanted = passed_here or is_secret(name) or looks_like_credential(value)
        if wanted and _NAME.match(name) and (passed_here or not name.startswith("GPUCI_")):
            secret[name] = value
        else:
            public[name] = value
    return public, secret


def step_limits(options: RunOptions, step: Step) -> Limits:
    """The project's limits as the command resolved them (GPUCI_NETWORK over [tool.gpuci] network, by
    harness.declare.precedence) with the step's own, where it declares them, in their place: a declared
    network wins."""
    config = options.config
    return Limits(
        memory=step.memory or config.memory,
        cpus=step.cpus or config.cpus,
        pids=step.pids_limit if step.pids_limit and step.pids_limit != DEFAULT_PIDS_LIMIT else config.pids_limit,
        network=step.network or config.network,
    )


def state_mounts(root: Path, workspace: str) -> list[BindMount]:
    """The checkout's folders the host trusts, read-only in the container: `.git` (its config and
    hooks run on the host), gpuci's state (runs, wheelhouse, image records) and nox's (the host runs
    its environments). The executor makes them first where missing (`prepare_state`)."""
    guarded = []
    for name in STATE_FOLDERS:
        path = root.resolve() / name
        if os.path.lexists(path) and not os.path.islink(path):  # a linked .git is no repository of ours
            guarded.append(BindMount(str(path), f"{workspace.rstrip('/')}/{name}", read_only=True))
    return guarded


def watch_for(stop: StopPolicy, timeout_s: float | None) -> Watch:
    """The watcher's and the janitor's orders: the run's stop, and the step's deadline as a backstop."""
    deadline = int(timeout_s + stop.grace_s + DEADLINE_MARGIN_S) if timeout_s else None
    return Watch(stop, deadline)


def watched_command(script: str, watch: Watch) -> tuple[str, ...]:
    ask, force = (name.removeprefix("SIG") for name in watch.stop.signals)
    return ("bash", "-c", WATCH_SCRIPT.format(ask=ask, force=force), "gpuci-watch", script)


def watch_env(watch: Watch) -> dict[str, str]:
    env = {"GPUCI_GRACE_S": f"{watch.stop.grace_s:g}"}
    if watch.deadline_s:
        env["GPUCI_DEADLINE_S"] = f"{watch.deadline_s:g}"
    return env
