"""A run's container planned without Docker: mounts, devices, environment, limits, secrets, the watcher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.declare.areas import Step
from harness.declare.config import ProjectConfig, load_config
from harness.declare.platforms import get_platform
from harness.declare.stop_policy import stop_policy
from harness.gpu.devices import DeviceOptions
from harness.gpu.for_run import SIM_MOUNT, run_devices
from harness.gpu.vram import sim
from harness.gpu.vram.release import VramWatch
from harness.images.record import ImageRecord
from harness.redact import Redactor
from harness.reports.report import RunReport
from harness.run.options import RunOptions
from harness.run.plan import DEADLINE_MARGIN_S, HARNESS_LIB, plan
from harness.run.run import Run
from harness.run.secrets import SECRETS_MOUNT, SOURCE_LINE
from harness.run.spec import REPORT_MOUNT

IMAGE = ImageRecord("sha256:" + "ab" * 32, tag="gpuci/cpu:0123456789abcdef")


def make_run(root: Path, step: Step, **options: object) -> Run:
    (root / ".git").mkdir(parents=True, exist_ok=True)
    run_options = RunOptions(root=root, platform="cpu", **options)  # type: ignore[arg-type]
    config = run_options.config
    # As the request resolves them (harness.declare.request): --timeout, else the step's; the settings' stop.
    timeout = config.timeout or (step.timeout_in_minutes * 60.0 if step.timeout_in_minutes else None)
    stop = stop_policy(float(config.grace), float(config.vram_timeout), 0.0)
    platform = get_platform("cpu")
    run = Run(
        run_options,
        "r1",
        root / ".gpuci" / "runs" / "r1",
        platform,
        Redactor({}),
        RunReport("r1", "cpu"),
        stop,
        platform.shutdown_budget_s,
        timeout,
        step=step,
    )
    run.area, run.outbox = "sampler", root / ".gpuci" / "outbox" / "run-r1"
    return run


def step(**fields: object) -> Step:
    return Step(**{"label": "unit", "commands": ("pytest -q",), "platforms": ("cpu",), "line": 3, **fields})  # type: ignore[arg-type]


def test_the_plan_holds_mounts_environment_labels_and_limits(tmp_path: Path) -> None:
    settings = ProjectConfig(grace=3.0)
    run = make_run(tmp_path, step(timeout_in_minutes=2, memory="2g", env={"MODE": "fast"}), config=settings)
    spec = plan(run, IMAGE, run_devices(None, DeviceOptions()))
    mounts = {m.target: m for m in spec.mounts}
    assert mounts["/workspace"].source == str(tmp_path.resolve()) and not mounts["/workspace"].read_only
    assert mounts["/workspace/.git"].read_only  # the host's git reads it: never writable inside
    assert mounts[REPORT_MOUNT].source == str(run.outbox.resolve())  # type: ignore[union-attr]
    harness_mount = mounts[f"{HARNESS_LIB}/harness"]
    assert harness_mount.read_only and (Path(harness_mount.source) / "pytest_plugin.py").is_file()
    assert spec.image == IMAGE.id and spec.name == "gpuci-r1" and spec.working_dir == "/workspace"
    assert spec.env["MODE"] == "fast" and spec.env["GPUCI_AREA"] == "sampler" and spec.env["GPUCI_VRAM_GUARD"] == "0"
    assert spec.labels["gpuci.run-id"] == "r1" and spec.labels["gpuci.supervisor-pid"] == str(os.getpid())
    assert spec.limits.memory == "2g" and spec.user == f"{os.getuid()}:{os.getgid()}"
    # The watcher's and the janitor's orders are the run's stop policy, and the env says the same.
    assert spec.watch is not None and spec.watch.stop == run.stop_policy and spec.watch.stop.grace_s == 3.0
    assert spec.watch.deadline_s == int(120 + 3 + DEADLINE_MARGIN_S)
    assert spec.env["GPUCI_GRACE_S"] == "3" and spec.env["GPUCI_DEADLINE_S"] == str(spec.watch.deadline_s)
    assert spec.command[:2] == ("bash", "-c") and spec.command[-1] == "pytest -q"


def test_secrets_are_referenced_by_name_and_sourced_never_in_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz0123")
    run = make_run(tmp_path, step(), pass_env=("HF_TOKEN",))
    spec = plan(run, IMAGE, run_devices(None, DeviceOptions()))
    assert "HF_TOKEN" not in spec.env and spec.secret_env == {"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz0123"}
    assert spec.command[-1].splitlines() == [SOURCE_LINE, "pytest -q"]
    assert SECRETS_MOUNT not in {m.target for m in spec.mounts}  # the file is written and mounted on execution
    said = spec.to_report(run.redactor)
    assert said["secret_env"] == ["HF_TOKEN"] and "hf_abcdefghijklmnopqrstuvwxyz0123" not in repr(said)
    assert "hf_abcdefghijklmnopqrstuvwxyz0123" not in repr(spec)


def test_the_leased_gpus_reach_the_container_as_the_vendor_says(tmp_path: Path, sim_gpus: Path) -> None:
    backend = sim.SimBackend(sim_gpus)
    watch = VramWatch(backend, backend.devices()[1:], timeout_s=10)
    nodes = DeviceOptions(nodes=("/dev/kfd:/dev/kfd:rwm",), groups=("44",), env={"HIP_VISIBLE_DEVICES": "0"})
    spec = plan(make_run(tmp_path, step()), IMAGE, run_devices(watch, nodes))
    assert spec.devices == nodes.nodes and spec.group_add == ("44",) and spec.env["HIP_VISIBLE_DEVICES"] == "0"
    assert spec.env["GPUCI_VRAM_GUARD"] == "1" and spec.env["GPUCI_RUN_GPUS"] == watch.devices[0].id
    assert {m.target: m.source for m in spec.mounts}[SIM_MOUNT] == str(sim_gpus.resolve())


def test_a_step_network_wins_over_the_hosts_and_the_projects(tmp_path: Path) -> None:
    """The host's GPUCI_NETWORK over [tool.gpuci] network is the config's resolution (once per command);
    the plan reads no environment, and a step's own network wins over both."""
    (tmp_path / "pyproject.toml").write_text('[tool.gpuci]\nnetwork = "host"\ncpus = 2\n')
    config = load_config(tmp_path, for_host=False, environ={"GPUCI_NETWORK": "bridge"})
    devices = run_devices(None, DeviceOptions())
    assert plan(make_run(tmp_path, step(), config=config), IMAGE, devices).network_mode == "bridge"
    spec = plan(make_run(tmp_path, step(network="none"), config=config), IMAGE, devices)
    assert spec.network_mode == "none" and spec.limits.cpus == 2.0


def test_planning_writes_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path, step())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    plan(run, IMAGE, run_devices(None, DeviceOptions()))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no folder, no file made


def test_gpus_not_leased_stay_hidden_whatever_the_step_or_image_says(tmp_path: Path, sim_gpus: Path) -> None:
    # A host whose default runtime is NVIDIA's passes every GPU to a container whose environment (the
    # step's `env`, or a CUDA base image's ENV) says `all`: a run with no lease must say `void`.
    greedy = {"NVIDIA_VISIBLE_DEVICES": "all"}
    spec = plan(make_run(tmp_path, step(env=greedy)), IMAGE, run_devices(None, DeviceOptions()))
    assert spec.env["NVIDIA_VISIBLE_DEVICES"] == "void"

    class NvmlNamed(sim.SimBackend):
        name = "nvml"  # the cuda vendor's backend, so the run leased that vendor's GPUs

    backend = NvmlNamed(sim_gpus)
    watch = VramWatch(backend, backend.devices()[:1], timeout_s=10)
    # Leased: the variable is the device options' to set (the runtime's request), never the step's.
    spec = plan(make_run(tmp_path / "leased", step(env=greedy)), IMAGE, run_devices(watch, DeviceOptions()))
    assert "NVIDIA_VISIBLE_DEVICES" not in spec.env
    chosen = DeviceOptions(env={"NVIDIA_VISIBLE_DEVICES": "GPU-1"})
    spec = plan(make_run(tmp_path / "chosen", step(env=greedy)), IMAGE, run_devices(watch, chosen))
    assert spec.env["NVIDIA_VISIBLE_DEVICES"] == "GPU-1"
