"""gpuci's pytest plugin: the supervisor's guarantees brought down to single tests.

- VRAM guard (`--gpuci-vram-guard`, on by default inside gpuci's containers): every test starts
  with its GPUs at the session's baseline, and a test whose memory does not come back fails
  its teardown naming the holders. It replaces hand-written "wait for ROCm memory" calls.
- `ServerProcess` / `gpuci_servers`: test servers in their own process group, ready-checked,
  torn down as a tree with one VRAM wait (`shutdown_many` for several).
- `gpuci_shutdown_timer` / `gpuci_startup_timer`: measured shutdown and start times against
  the platform's budget, with the margin stated, recorded for the run report.
- `--gpuci-gpus-per-worker N`: pytest-xdist workers get disjoint, leased GPUs, made visible
  before any CUDA/HIP initialisation.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from harness.declare.stop_policy import DEFAULT_VRAM_TIMEOUT_S
from harness.gpu.vendors import backend_names, open_backend
from harness.gpu.vram.base import Device, VramBackend
from harness.gpu.vram.release import take_baseline, wait_for_release
from harness.in_container import RECORDS_NAME
from harness.plugin.collector import enable_in_plugin
from harness.plugin.pinning import RUN_GPUS_ENV, Pinned, PinningError, pin_worker
from harness.plugin.results import collect_writer_for, writer_for
from harness.plugin.servers import ServerPool, ServerProcess
from harness.plugin.sharding import DurationRecorder, load_durations, shard_of
from harness.plugin.state import PluginState
from harness.plugin.timers import ShutdownMeasurement, ShutdownTimer, StartupTimer

# Buildkite's test collector where gpuci mounted it (its token set): on the path now, at this
# module's import by `-p`, so pytest finds it by its entry point when it loads plugins next.
enable_in_plugin()

# What tests import from the plugin module (its parts live in harness/plugin/).
__all__ = ["ServerPool", "ServerProcess", "ShutdownMeasurement", "ShutdownTimer", "StartupTimer", "shard_of"]


def _state(config: pytest.Config) -> PluginState:
    return config.stash[_KEY]


_KEY = pytest.StashKey[PluginState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpuci")
    group.addoption(
        "--gpuci-vram-guard",
        action="store_true",
        default=None,
        help="wait for VRAM back at baseline between tests; fail tests that leak",
    )
    group.addoption("--gpuci-no-vram-guard", action="store_false", dest="gpuci_vram_guard")
    group.addoption(
        "--gpuci-vram-timeout", type=float, default=DEFAULT_VRAM_TIMEOUT_S, help="seconds to wait for release"
    )
    group.addoption("--gpuci-vram-backend", default=None, help=f"{', '.join(backend_names())} or auto")
    group.addoption("--gpuci-gpus-per-worker", type=int, default=0, help="disjoint GPUs per xdist worker")
    group.addoption("--gpuci-records", default=None, help="where to write timing records (JSON)")
    group.addoption("--gpuci-shard", default=None, help="I/N: run the I-th of N shares of the tests (0-based)")
    group.addoption("--gpuci-durations", default=None, help="JSON {test id: seconds} that balances shards")


_PINNED = pytest.StashKey[Pinned]()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Pin an xdist worker to its GPUs before any conftest or test can import torch."""
    per_worker = getattr(early_config.known_args_namespace, "gpuci_gpus_per_worker", 0)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not per_worker or not worker:
        return
    try:
        early_config.stash[_PINNED] = pin_worker(
            worker, per_worker, getattr(early_config.known_args_namespace, "gpuci_vram_backend", None)
        )
    except PinningError as exc:
        raise pytest.UsageError(str(exc)) from None
    except Exception as exc:
        raise pytest.UsageError(f"gpuci: no VRAM backend for GPU pinning: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    platform = os.environ.get("GPUCI_PLATFORM", "cpu")
    guard = config.getoption("gpuci_vram_guard")
    if guard is None:
        # A run says whether its step has GPUs to guard (a num_gpus: 0 step has none); else on in containers.
        explicit = os.environ.get("GPUCI_VRAM_GUARD")
        guard = explicit == "1" if explicit in ("0", "1") else os.environ.get("GPUCI_IN_CONTAINER") == "1"
    per_worker = config.getoption("gpuci_gpus_per_worker")
    state = PluginState(platform, guard=bool(guard), guard_timeout=config.getoption("gpuci_vram_timeout"))
    config.stash[_KEY] = state
    if os.environ.get("GPUCI_REPORT_DIR") or config.getoption("gpuci_records"):
        config.pluginmanager.register(DurationRecorder(state), "gpuci-durations")
    is_xdist_controller = not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", 0))
    writer = None if is_xdist_controller else writer_for(config)  # workers report their own tests
    if writer is not None:
        config.pluginmanager.register(writer, "gpuci-results")
    if not hasattr(config, "workerinput"):  # collection skips and errors: once, from the process pytest counts in
        collect_writer = collect_writer_for(config)
        if collect_writer is not None:
            config.pluginmanager.register(collect_writer, "gpuci-collect-results")
    pinned = config.stash.get(_PINNED, None)
    if pinned is not None:  # an xdist worker: its own GPUs only, for its guard too
        state.backend, state.devices, state.lease = pinned.backend, pinned.devices, pinned.lease
        state.baseline = take_baseline(state.backend, state.devices)
        _guard_if_needed(config, state)
        return
    is_controller = per_worker and not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", 0)
    if not (guard or per_worker) or is_controller:
        return
    try:
        state.backend = open_backend(config.getoption("gpuci_vram_backend"))
    except Exception as exc:
        raise pytest.UsageError(f"gpuci: no VRAM backend for the guard or GPU pinning: {exc}") from None
    if per_worker:  # one process, no xdist: it is worker gw0
        try:
            pinned = pin_worker("gw0", per_worker, config.getoption("gpuci_vram_backend"))
        except PinningError as exc:
            raise pytest.UsageError(str(exc)) from None
        state.backend.close()
        state.backend, state.devices, state.lease = pinned.backend, pinned.devices, pinned.lease
    else:
        run_gpus = [g for g in os.environ.get(RUN_GPUS_ENV, "").split(",") if g]
        devices = state.backend.devices()
        # Inside a run the guard watches the run's GPUs, not every GPU the backend sees.
        state.devices = [d for d in devices if d.id in run_gpus] if run_gpus else devices
    state.baseline = take_baseline(state.backend, state.devices)
    _guard_if_needed(config, state)


def _guard_if_needed(config: pytest.Config, state: PluginState) -> None:
    if state.guard and state.backend is not None and state.devices:
        config.pluginmanager.register(VramGuard(), "gpuci-vram-guard")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_KEY, None)
    if state is None:
        return
    if state.records:
        path = _records_path(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([asdict(r) for r in state.records], indent=1))
    if state.lease is not None:
        state.lease.release()
    if state.backend is not None:
        state.backend.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("gpuci_shard")
    if not shard:
        return
    try:
        index, count = (int(part) for part in shard.split("/"))
        assert 0 <= index < count
    except (ValueError, AssertionError):
        raise pytest.UsageError(f"--gpuci-shard {shard!r}: write I/N with 0 <= I < N, e.g. 0/4.") from None
    durations = load_durations(config.getoption("gpuci_durations"))
    mine = set(shard_of([item.nodeid for item in items], count, durations)[index])
    keep = [item for item in items if item.nodeid in mine]
    config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in mine])
    items[:] = keep


def _records_path(config: pytest.Config) -> Path:
    explicit = config.getoption("gpuci_records")
    worker = getattr(config, "workerinput", {}).get("workerid")
    name = f"{RECORDS_NAME}-{worker}.json" if worker else f"{RECORDS_NAME}.json"
    if explicit:
        return Path(explicit).with_name(Path(explicit).stem + (f"-{worker}" if worker else "") + ".json")
    return Path(os.environ.get("GPUCI_REPORT_DIR") or ".gpuci") / name


def _own_bytes(backend: VramBackend, device: Device) -> int:
    """Memory this pytest process holds itself (a CUDA context of in-process tests) is not a leak."""
    return sum(h.used_bytes or 0 for h in backend.holders(device) if h.pid == os.getpid())


def _wait_back(state: PluginState) -> tuple[bool, float, list[dict[str, Any]]]:
    """(released, seconds waited, holders). The seconds count from the first look, the holder scan
    between the two waits included: the second wait alone missed a release lag that began at the first."""
    assert state.backend is not None
    started = time.monotonic()
    baseline = dict(state.baseline)
    result = wait_for_release(state.backend, state.devices, baseline, 0.0, state.tolerance)
    if not result.released:
        for device in state.devices:
            baseline[device.id] += _own_bytes(state.backend, device)
        result = wait_for_release(state.backend, state.devices, baseline, state.guard_timeout, state.tolerance)
    return result.released, time.monotonic() - started, [asdict(h) for h in result.holders]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _state(item.config).current_test = item.nodeid  # what the records made during the test name


class VramGuard:
    """The guard's autouse fixture, registered (`gpuci-vram-guard`) only where there are GPUs to
    guard: an autouse fixture costs every test pytest's fixture machinery, most of the plugin's
    cost per test where there is nothing to guard (bench/plugin_overhead.py: 154 µs of CPU per
    test with it, 40 µs without)."""

    @pytest.fixture(autouse=True)
    def _gpuci_vram_guard(self, request: pytest.FixtureRequest) -> Iterator[None]:
        yield from _guarded(_state(request.config))


def _guarded(state: PluginState) -> Iterator[None]:
    if not state.guard or state.backend is None or not state.devices:
        yield
        return
    released, seconds, holders = _wait_back(state)
    if seconds > 0.01:
        state.record("vram-wait-before", seconds, holders=holders)
    if not released:
        pytest.fail(f"gpuci: GPUs not back at baseline before the test after {seconds:.1f}s; holders: {holders}")
    yield
    released, seconds, holders = _wait_back(state)
    if seconds > 0.01 or not released:
        state.record("vram-wait-after", seconds, holders=holders)
    if not released:
        # The leak is charged to this test once; later tests are judged from here on.
        assert state.backend is not None
        state.baseline = take_baseline(state.backend, state.devices)
        names = ", ".join(f"pid {h['pid']} ({h['command'][:80]}, {h['used_bytes']} bytes)" for h in holders)
        pytest.fail(
            f"gpuci: this test's GPU memory was not released within {state.guard_timeout:.0f}s; "
            f"holders: {names or 'none listed (the driver still counts it)'}",
            pytrace=False,
        )


# ---------------------------------------------------------------- test servers


@pytest.fixture
def gpuci_servers(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    pool = ServerPool(_state(request.config))
    yield pool
    pool.stop_all()


@pytest.fixture
def gpuci_shutdown_timer(request: pytest.FixtureRequest) -> ShutdownTimer:
    return ShutdownTimer(_state(request.config))


@pytest.fixture
def gpuci_startup_timer(request: pytest.FixtureRequest) -> StartupTimer:
    return StartupTimer(_state(request.config))
