"""One run, start to report: image, run spec, supervised workload, report.

`execute_step` serves `python -m harness run` (what nox sessions and Buildkite steps call);
`execute_command` serves `python -m harness supervise` (any command, host or container).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.console import say
from harness.declare.platforms import get_platform
from harness.errors import ExitCode, GpuciError, InfrastructureError, UsageError
from harness.gpu import lease
from harness.gpu.lease import Lease
from harness.gpu.vram import open_backend
from harness.gpu.vram import sim as simgpu
from harness.gpu.vram.release import DEFAULT_TOLERANCE
from harness.redact import Redactor
from harness.reports.report import git_state, host_facts, new_run_id, run_directory, write_report
from harness.run.host import HostWorkload
from harness.run.reaper import SUPERVISOR_PID_ENV, SUPERVISOR_START_ENV, dead_run_containers, supervisor_identity
from harness.run.spec import REPORT_MOUNT
from harness.run.supervisor import StopPolicy, Supervised, VramWatch, Workload, supervise

if TYPE_CHECKING:  # Docker and YAML are imported only where used: host mode runs without them.
    from harness.declare.areas import Step
    from harness.run.container import ContainerWorkload

SIM_MOUNT = "/gpuci/simgpu"
# gpuci's plugin, loaded by module name: inside images gpuci is on PYTHONPATH, not installed.
PYTEST_PLUGIN_ARGS = ("-p", "harness.pytest_plugin", "-p", "no:cacheprovider")


@dataclass(frozen=True)
class RunOptions:
    root: Path
    platform: str
    pytest_args: tuple[str, ...] = ()
    container: bool = True
    report_dir: Path | None = None
    vram_backend: str | None = None
    grace_s: float = 5.0
    vram_timeout_s: float = 60.0
    vram_tolerance: int = DEFAULT_TOLERANCE
    base_image: str | None = None
    ca_bundle: Path | None = None
    # Host variables passed through by name (secrets included, which reports never show).
    pass_env: tuple[str, ...] = ()
    echo: bool = True
    # Overrides the step's timeout_in_minutes.
    timeout_s: float | None = None
    # A reproduction: the run id and report it reproduces; `shell` opens a shell instead of the command.
    repro_of: dict[str, str] | None = None
    shell: bool = False
    # How long a run waits for GPUs that another run on this host has leased.
    lease_timeout_s: float = 600.0
    # The checkout's path inside containers, and where steps without working_dir run
    # ([tool.gpuci] workspace / default_working_dir).
    workspace: str = "/workspace"
    default_working_dir: str | None = None

    def host_path(self, container_path: str | None) -> Path:
        """A step's working dir on the host: container paths under the workspace map into the checkout."""
        path = container_path or self.default_working_dir or self.workspace
        if path == self.workspace or path.startswith(self.workspace.rstrip("/") + "/"):
            return self.root / path[len(self.workspace) :].lstrip("/")
        return Path(path) if path.startswith("/") else self.root / path


@dataclass
class RunContext:
    """What a run has gathered so far, so a failure at any point still writes a report."""

    run_id: str
    directory: Path
    report: dict[str, Any] = field(default_factory=dict)


def _stop_policy(grace_s: float) -> StopPolicy:
    """Inside a Buildkite job the whole stop must fit the agent's cancel grace period."""
    agent_grace = float(os.environ.get("BUILDKITE_CANCEL_GRACE_PERIOD", "0") or 0)
    if agent_grace > 0:
        grace_s = min(grace_s, max(0.5, agent_grace * 0.4))
        return StopPolicy(grace_s=grace_s, kill_wait_s=max(1.0, agent_grace * 0.3))
    return StopPolicy(grace_s=grace_s)


def _vram_watch(options: RunOptions, num_gpus: int, owner: str) -> tuple[VramWatch | None, Lease | None]:
    """The run's GPUs, leased so no other run on this host takes them, and watched for release."""
    if num_gpus == 0:
        return None, None
    platform = get_platform(options.platform)
    name = options.vram_backend or platform.vram_backend
    if name == "sim":
        simgpu.init(simgpu.default_directory())
    backend = open_backend(name)
    candidates = backend.devices()
    if len(candidates) < num_gpus:
        backend.close()
        raise InfrastructureError(
            f"the step needs {num_gpus} GPU(s) and the {backend.name} backend sees {len(candidates)}."
        )
    try:
        held = lease.acquire(candidates, num_gpus, owner, timeout=options.lease_timeout_s)
    except InfrastructureError:
        backend.close()
        raise
    return VramWatch(backend, held.devices, options.vram_timeout_s, options.vram_tolerance), held


def _visible_devices_env(platform_name: str, watch: VramWatch | None) -> dict[str, str]:
    """Pin the workload to the leased GPUs, by the variable its runtime reads before initialising."""
    if watch is None:
        return {}
    positions = ",".join(str(d.index) for d in watch.devices)
    if watch.backend.name == "sim":
        return {simgpu.VISIBLE_ENV: positions}
    variable = get_platform(platform_name).visible_devices_env
    return {variable: positions} if variable else {}


def _outcome(sup: Supervised, soft_fail: bool = False) -> tuple[str, ExitCode]:
    if sup.stop_reason not in ("exited", "timeout"):
        return "cancelled", ExitCode.TESTS_FAILED  # the agent or a person stopped it: nothing to retry
    if sup.teardown_failed:
        return "teardown-failed", ExitCode.TEARDOWN_FAILED
    if sup.stop_reason == "timeout":
        return "timeout", ExitCode.TESTS_FAILED
    if sup.exit_code == 0:
        return "passed", ExitCode.PASSED
    return "failed", ExitCode.TESTS_FAILED


def _supervised_report(sup: Supervised, watch: VramWatch | None) -> dict[str, Any]:
    release = sup.release
    return {
        "exit_code": sup.exit_code,
        "stop_reason": sup.stop_reason,
        "signals_sent": sup.signals_sent,
        "timings": {k: round(v, 6) for k, v in sup.timings.items()},
        "budget": {
            "seconds": sup.budget_s,
            "stop_seconds": None if sup.stop_s is None else round(sup.stop_s, 6),
            "margin_seconds": None if sup.budget_margin_s is None else round(sup.budget_margin_s, 6),
            "within": None if sup.budget_margin_s is None else sup.budget_margin_s >= 0,
        },
        "vram": None
        if watch is None or release is None
        else {
            "backend": watch.backend.name,
            "devices": [d.id for d in watch.devices],
            "baseline_bytes": sup.baseline,
            "final_bytes": release.final_used,
            "tolerance_bytes": release.tolerance_bytes,
            "released": release.released,
            "wait_seconds": round(release.seconds, 6),
            "polls": release.polls,
            "holders": [vars(h) for h in release.holders],
            "killed_holders": [vars(h) for h in sup.killed_holders],
            "baseline_holders": [vars(h) for h in sup.baseline_holders],
        },
        "removed": sup.removed,
        "teardown_failures": sup.teardown_failures(),
    }


def _finish(ctx: RunContext, root: Path, report_dir: Path | None, started: float, code: ExitCode) -> ExitCode:
    ctx.report["gpuci_exit_code"] = int(code)
    ctx.report["timings"] = {**ctx.report.get("timings", {}), "total_s": round(time.monotonic() - started, 6)}
    ctx.report["finished_at"] = time.time()
    path = write_report(ctx.directory, ctx.report, None if report_dir else root)
    say(f"{ctx.report.get('outcome', '?')}: report {path}")
    from harness.reports.summary import on_buildkite

    on_buildkite(ctx.report, ctx.directory)
    return code


def _supervise_into(
    ctx: RunContext,
    workload: Workload,
    options: RunOptions,
    watch: VramWatch | None,
    timeout_s: float | None,
    budget_s: float,
    soft_fail: bool = False,
) -> ExitCode:
    sup = supervise(workload, timeout_s=timeout_s, budget_s=budget_s, stop=_stop_policy(options.grace_s), vram=watch)
    supervised = _supervised_report(sup, watch)
    ctx.report["timings"] = {**ctx.report.get("timings", {}), **supervised.pop("timings")}
    ctx.report.update(supervised)
    leftovers = getattr(workload, "leftovers", [])
    if leftovers:
        ctx.report["leftover_pids"] = leftovers
        ctx.report["survivor_pids"] = getattr(workload, "survivors", [])
    outcome, code = _outcome(sup, soft_fail)
    ctx.report["outcome"] = outcome
    ctx.report["soft_fail"] = soft_fail
    return code


def _reap_own_leftovers(client: Any, area: str, platform: str) -> None:
    """Containers of this session whose supervisor died (a SIGKILLed run); never a live run's."""
    from harness.run.reaper import clean

    leftovers = dead_run_containers(client, area, platform)
    if leftovers:
        say(f"removing {len(leftovers)} container(s) that crashed runs of this session left behind")
        for problem in clean(leftovers, client):
            say(f"could not clean up: {problem}")


def run_labels() -> dict[str, str]:
    """Container labels naming the supervisor, so a reaper can tell a live run from a crashed one."""
    me = supervisor_identity()
    return {
        "gpuci.supervisor-pid": me["pid"],
        "gpuci.supervisor-start": me["start"],
        "gpuci.host": me["host"],
    }


def supervisor_env() -> dict[str, str]:
    """The same, in every workload process's environment (for GPU holders that outlive a run)."""
    me = supervisor_identity()
    return {SUPERVISOR_PID_ENV: me["pid"], SUPERVISOR_START_ENV: me["start"]}


def _pytest_records(directory: Path) -> list[dict[str, Any]]:
    """Per-test teardown and startup records that gpuci's pytest plugin wrote (one file per worker)."""
    records: list[dict[str, Any]] = []
    for path in sorted(directory.glob("pytest-records*.json")):
        try:
            records.extend(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return records


def shard_args(directory: Path, report_dir_inside: str, session: str, root: Path) -> list[str]:
    """In a Buildkite job of a step with `parallelism`, this job's share of the tests, balanced by
    the durations of the session's latest earlier report when one is at hand."""
    count = int(os.environ.get("BUILDKITE_PARALLEL_JOB_COUNT", "0") or 0)
    if count <= 1:
        return []
    index = int(os.environ.get("BUILDKITE_PARALLEL_JOB", "0") or 0)
    durations = _earlier_durations(root, session)
    if not durations:
        return [f"--gpuci-shard={index}/{count}"]
    (directory / "durations.json").write_text(json.dumps(durations))
    return [f"--gpuci-shard={index}/{count}", f"--gpuci-durations={report_dir_inside}/durations.json"]


def _earlier_durations(root: Path, session: str) -> dict[str, float]:
    from harness.reports.report import RUNS_DIR

    reports = sorted((Path(root) / RUNS_DIR).glob(f"*-{session}-*/report.json"), reverse=True)
    for path in reports:
        try:
            records = json.loads(path.read_text()).get("tests") or []
        except (OSError, ValueError):
            continue
        durations = {r["test"]: r["seconds"] for r in records if r.get("phase") == "call"}
        if durations:
            return durations
    return {}


def _container_env(
    step_env: dict[str, str], options: RunOptions, run_id: str, extra: dict[str, str], shards: list[str]
) -> dict[str, str]:
    addopts = [f"--junitxml={REPORT_MOUNT}/junit.xml", *PYTEST_PLUGIN_ARGS, *shards, *options.pytest_args]
    env = {
        "HOME": "/tmp",
        "PYTHONPATH": options.workspace,
        "GPUCI_RUN_ID": run_id,
        "GPUCI_PLATFORM": options.platform,
        "GPUCI_REPORT_DIR": REPORT_MOUNT,
        "GPUCI_IN_CONTAINER": "1",
        **supervisor_env(),
        "PYTEST_ADDOPTS": shlex.join(addopts),
        **extra,
        **step_env,
    }
    for name in options.pass_env:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def execute_step(options: RunOptions, area_name: str, step_label: str | None) -> ExitCode:
    """Run one step, or every non-optional step of the area on the platform, each as its own run."""
    from harness.declare.areas import find_area

    area = find_area(options.root, area_name)
    steps = (
        [area.step(step_label, options.platform)]
        if step_label
        else [s for s in area.steps_for(options.platform) if not s.optional]
    )
    if not steps:
        raise UsageError(f"area {area.name!r} has no step that runs on {options.platform} ({area.path}).")
    worst = ExitCode.PASSED
    for step in steps:
        code = _execute_one(options, area.name, step)
        worst = max(worst, code, key=_severity)
    return worst


def _severity(code: ExitCode) -> int:
    return [
        ExitCode.PASSED,
        ExitCode.TESTS_FAILED,
        ExitCode.TEARDOWN_FAILED,
        ExitCode.USAGE,
        ExitCode.INFRASTRUCTURE,
    ].index(code)


def _execute_one(options: RunOptions, area: str, step: Step) -> ExitCode:
    from harness.declare.areas import session_name

    started = time.monotonic()
    session = session_name(options.platform, area)
    run_id = new_run_id(session)
    directory = run_directory(options.root, run_id, options.report_dir)
    platform = get_platform(options.platform)
    redactor = Redactor(os.environ, step.env)
    say(f"{session} · step {step.label!r} · run {run_id}")
    ctx = _new_context(
        options,
        run_id,
        directory,
        container=options.container,
        session=session,
        area=area,
        step=step.label,
        pytest_args=list(options.pytest_args),
        **({"repro_of": options.repro_of} if options.repro_of else {}),
    )
    watch, held = None, None
    try:
        watch, held = _vram_watch(options, step.num_gpus, f"run {run_id} (pid {os.getpid()})")
        ctx.report["lease"] = [d.id for d in held.devices] if held else []
        ctx.report["gpus"] = [
            {"id": d.id, "name": d.name, "total_bytes": d.total_bytes} for d in (watch.devices if watch else [])
        ]
        timeout_s = options.timeout_s or (step.timeout_in_minutes * 60.0 if step.timeout_in_minutes else None)
        budget_s = step.shutdown_budget.get(options.platform, platform.shutdown_budget_s)
        workload = (
            _step_container(options, step, run_id, area, directory, redactor, watch, ctx)
            if options.container
            else _step_host(options, step, run_id, area, directory, redactor, watch, ctx)
        )
        if options.shell:
            from harness.run.container import interactive_shell

            if not options.container:
                raise UsageError("--shell opens a shell in the run's container; drop --no-container.")
            say("opening a shell in the run's container (exit it to end the run)")
            code = ExitCode.PASSED if interactive_shell(workload.spec) == 0 else ExitCode.TESTS_FAILED
            ctx.report["outcome"] = "shell"
            return _finish(ctx, options.root, options.report_dir, started, code)
        code = _supervise_into(ctx, workload, options, watch, timeout_s, budget_s, step.soft_fail)
        junit = directory / "junit.xml"
        ctx.report["junit"] = str(junit) if junit.exists() else None
        ctx.report["tests"] = _pytest_records(directory)
        ctx.report["log"] = str(directory / "output.log")
    except GpuciError as exc:
        _finish_failed(ctx, options, started, exc)
        raise
    finally:
        _let_go(watch, held)
    return _finish(ctx, options.root, options.report_dir, started, code)


def _new_context(options: RunOptions, run_id: str, directory: Path, *, container: bool, **fields: Any) -> RunContext:
    """What every report starts with, so a run that fails at any point still says what it was."""
    return RunContext(
        run_id,
        directory,
        {
            "run_id": run_id,
            "platform": options.platform,
            **fields,
            "started_at": time.time(),
            "git": git_state(options.root),
            "host": host_facts(),
            "mode": "container" if container else "host",
            "report_dir": str(directory),
        },
    )


def _host_env(options: RunOptions, run_id: str, watch: VramWatch | None, **extra: str) -> dict[str, str]:
    """A host workload's environment: the run's id and supervisor (for the reaper), its GPUs."""
    env = {**os.environ, "GPUCI_RUN_ID": run_id, "GPUCI_PLATFORM": options.platform, **supervisor_env(), **extra}
    if watch and watch.backend.name == "sim":
        env[simgpu.ENV] = str(simgpu.default_directory())
    env.update(_visible_devices_env(options.platform, watch))
    return env


def _finish_failed(ctx: RunContext, options: RunOptions, started: float, exc: GpuciError) -> None:
    """A run that could not run (no engine, bad image, no free GPU) still leaves its report."""
    ctx.report["outcome"] = "infrastructure" if exc.exit_code == ExitCode.INFRASTRUCTURE else "error"
    ctx.report["error"] = str(exc)
    _finish(ctx, options.root, options.report_dir, started, exc.exit_code)


def _let_go(watch: VramWatch | None, held: Lease | None) -> None:
    if watch:
        watch.backend.close()
    if held:
        held.release()


def _step_container(
    options: RunOptions,
    step: Step,
    run_id: str,
    area: str,
    directory: Path,
    redactor: Redactor,
    watch: VramWatch | None,
    ctx: RunContext,
) -> ContainerWorkload:
    from harness.gpu.devices import container_devices
    from harness.images import build as images
    from harness.images.engine import connect
    from harness.run.container import ContainerWorkload
    from harness.run.spec import BindMount, RunSpec

    client = connect()
    _reap_own_leftovers(client, area, options.platform)
    recipe = images.recipe_for(options.root, options.platform, options.base_image, options.ca_bundle)
    image = images.ensure(client, recipe, options.root)
    ctx.report["image"] = {
        "tag": image.tag,
        "id": image.id,
        "built": image.built,
        "content_hash": image.content_hash,
        "base_image": recipe.build_args.get("BASE_IMAGE"),
    }
    ctx.report["timings"] = {"image_ensure_s": round(image.seconds, 6)}
    mounts = [
        BindMount(str(options.root.resolve()), options.workspace),
        BindMount(str(directory.resolve()), REPORT_MOUNT),
    ]
    extra_env = {"GPUCI_AREA": area, "GPUCI_STEP": step.label}
    if watch and watch.backend.name == "sim":
        mounts.append(BindMount(str(simgpu.default_directory().resolve()), SIM_MOUNT))
        # Simulated devices keep host numbering inside; NVIDIA's runtime renumbers what it passes.
        extra_env.update({simgpu.ENV: SIM_MOUNT, **_visible_devices_env(options.platform, watch)})
    # The NVIDIA runtime's GPU request where the engine has it; CDI or raw nodes otherwise.
    has_runtime = options.platform != "cuda" or "nvidia" in (client.info().get("Runtimes") or {})
    devices = container_devices(options.platform, watch.devices if watch else [], has_runtime)
    ctx.report["devices"] = {
        "route": devices.route,
        "nodes": list(devices.nodes),
        "groups": list(devices.groups),
    }
    shards = shard_args(directory, REPORT_MOUNT, f"{options.platform}_{area}", options.root)
    workdir = step.working_dir or options.default_working_dir or options.workspace
    spec = RunSpec(
        image=image.tag,
        command=("bash", "-ec", "\n".join(step.commands)),
        name=f"gpuci-{run_id}",
        env={**_container_env(step.env, options, run_id, extra_env, shards), **devices.env},
        mounts=tuple(mounts),
        working_dir=workdir if workdir.startswith("/") else f"{options.workspace}/{workdir}",
        labels={
            "gpuci.run-id": run_id,
            "gpuci.area": area,
            "gpuci.step": step.label,
            "gpuci.platform": options.platform,
            **run_labels(),
        },
        devices=devices.nodes,
        gpu_requests=devices.requests,
        group_add=devices.groups,
        user=f"{os.getuid()}:{os.getgid()}",
    )
    ctx.report["spec"] = spec.to_report(redactor)
    return ContainerWorkload(client, spec, directory / "output.log", redactor, echo=options.echo)


def _step_host(
    options: RunOptions,
    step: Step,
    run_id: str,
    area: str,
    directory: Path,
    redactor: Redactor,
    watch: VramWatch | None,
    ctx: RunContext,
) -> HostWorkload:
    shards = shard_args(directory, str(directory.resolve()), f"{options.platform}_{area}", options.root)
    addopts = [
        f"--junitxml={directory.resolve()}/junit.xml",
        *PYTEST_PLUGIN_ARGS,
        *shards,
        *options.pytest_args,
    ]
    env = _host_env(
        options,
        run_id,
        watch,
        **step.env,
        GPUCI_REPORT_DIR=str(directory.resolve()),
        GPUCI_VRAM_GUARD="1",
        PYTEST_ADDOPTS=shlex.join(addopts),
        PYTHONPATH=os.pathsep.join(p for p in (str(options.root), os.environ.get("PYTHONPATH")) if p),
    )
    cwd = options.host_path(step.working_dir)
    command = ["bash", "-ec", "\n".join(step.commands)]
    ctx.report["spec"] = {
        "command": [redactor.text(c) for c in command],
        "cwd": str(cwd),
        "env": redactor.env({k: v for k, v in env.items() if k.startswith(("GPUCI_", "PYTEST_"))}),
    }
    return HostWorkload(command, env, cwd, directory / "output.log", redactor, echo=options.echo)


def execute_command(
    options: RunOptions, command: list[str], image: str | None, num_gpus: int, timeout_s: float | None
) -> ExitCode:
    """`python -m harness supervise`: any command, on the host or in `image`, under the supervisor."""
    started = time.monotonic()
    run_id = new_run_id("supervise")
    directory = run_directory(options.root, run_id, options.report_dir)
    redactor = Redactor(os.environ)
    platform = get_platform(options.platform)
    ctx = _new_context(options, run_id, directory, container=bool(image), session="supervise")
    watch, held = None, None
    try:
        watch, held = _vram_watch(options, num_gpus, f"run {run_id} (pid {os.getpid()})")
        workload: Workload
        if image:
            from harness.images.engine import connect
            from harness.run.container import ContainerWorkload
            from harness.run.spec import RunSpec

            spec = RunSpec(
                image=image,
                command=tuple(command),
                name=f"gpuci-{run_id}",
                labels={"gpuci.run-id": run_id, **run_labels()},
                env=supervisor_env(),
                user=f"{os.getuid()}:{os.getgid()}",
            )
            ctx.report["spec"] = spec.to_report(redactor)
            workload = ContainerWorkload(connect(), spec, directory / "output.log", redactor, echo=options.echo)
        else:
            env = _host_env(options, run_id, watch)
            ctx.report["spec"] = {"command": [redactor.text(c) for c in command], "cwd": os.getcwd()}
            workload = HostWorkload(command, env, Path.cwd(), directory / "output.log", redactor, echo=options.echo)
        code = _supervise_into(ctx, workload, options, watch, timeout_s, platform.shutdown_budget_s)
    except GpuciError as exc:
        _finish_failed(ctx, options, started, exc)
        raise
    finally:
        _let_go(watch, held)
    return _finish(ctx, options.root, options.report_dir, started, code)
