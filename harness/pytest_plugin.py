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
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.declare.platforms import PLATFORMS
from harness.gpu.vram import open_backend
from harness.gpu.vram.base import Device, VramBackend
from harness.gpu.vram.release import DEFAULT_TOLERANCE, take_baseline, wait_for_release
from harness.run.teardown import Baseline, shutdown_many, terminate_tree

RECORDS_NAME = "pytest-records"
DEFAULT_MARGIN_S = 0.5


@dataclass
class Record:
    test: str
    phase: str  # shutdown | startup-cold | startup-warm | vram-wait | ...
    seconds: float
    budget: float | None = None
    gpus: list[str] = field(default_factory=list)
    holders: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PluginState:
    platform: str
    backend: VramBackend | None = None
    devices: list[Device] = field(default_factory=list)
    baseline: dict[str, int] = field(default_factory=dict)
    guard: bool = False
    guard_timeout: float = 60.0
    tolerance: int = DEFAULT_TOLERANCE
    records: list[Record] = field(default_factory=list)
    lease: Any = None
    current_test: str = ""

    @property
    def budget(self) -> float:
        return PLATFORMS[self.platform].shutdown_budget_s if self.platform in PLATFORMS else 2.1

    def record(self, phase: str, seconds: float, budget: float | None = None, **extra: Any) -> Record:
        rec = Record(self.current_test, phase, seconds, budget, [d.id for d in self.devices], **extra)
        self.records.append(rec)
        return rec


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
    group.addoption("--gpuci-vram-timeout", type=float, default=60.0, help="seconds to wait for release")
    group.addoption("--gpuci-vram-backend", default=None, help="nvml, amdsmi, sim or auto")
    group.addoption("--gpuci-gpus-per-worker", type=int, default=0, help="disjoint GPUs per xdist worker")
    group.addoption("--gpuci-records", default=None, help="where to write timing records (JSON)")
    group.addoption("--gpuci-shard", default=None, help="I/N: run the I-th of N shares of the tests (0-based)")
    group.addoption("--gpuci-durations", default=None, help="JSON {test id: seconds} that balances shards")


def _visible_env(platform: str, backend_name: str) -> str:
    env = PLATFORMS[platform].visible_devices_env if platform in PLATFORMS else None
    if backend_name == "sim" or env is None:
        return "GPUCI_SIM_VISIBLE_DEVICES"
    return env


def _pin_worker(config: pytest.Config, state: PluginState, per_worker: int) -> None:
    """Give this xdist worker its own GPUs before any test imports torch."""
    from harness.gpu import lease

    worker = getattr(config, "workerinput", {}).get("workerid", "gw0")
    index = int(worker.lstrip("gw") or 0)
    assert state.backend is not None
    devices = state.backend.devices()
    mine = devices[index * per_worker : (index + 1) * per_worker]
    if len(mine) < per_worker:
        raise pytest.UsageError(
            f"--gpuci-gpus-per-worker {per_worker}: worker {worker} needs GPUs {index * per_worker}.."
            f"{(index + 1) * per_worker - 1} and the host has {len(devices)}; use fewer workers (-n)."
        )
    state.lease = lease.acquire(mine, per_worker, f"pytest worker {worker} (pid {os.getpid()})", timeout=60)
    variable = _visible_env(state.platform, state.backend.name)
    positions = [str(d.index) for d in mine]
    os.environ[variable] = ",".join(positions)
    if variable != "GPUCI_SIM_VISIBLE_DEVICES":
        os.environ["GPUCI_SIM_VISIBLE_DEVICES"] = ",".join(positions)
    state.devices = mine


def pytest_configure(config: pytest.Config) -> None:
    platform = os.environ.get("GPUCI_PLATFORM", "cpu")
    guard = config.getoption("gpuci_vram_guard")
    if guard is None:
        guard = os.environ.get("GPUCI_IN_CONTAINER") == "1" or os.environ.get("GPUCI_VRAM_GUARD") == "1"
    per_worker = config.getoption("gpuci_gpus_per_worker")
    state = PluginState(platform, guard=bool(guard), guard_timeout=config.getoption("gpuci_vram_timeout"))
    config.stash[_KEY] = state
    if os.environ.get("GPUCI_REPORT_DIR") or config.getoption("gpuci_records"):
        config.pluginmanager.register(_DurationRecorder(state), "gpuci-durations")
    is_controller = per_worker and not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", 0)
    if not (guard or per_worker) or is_controller:
        return
    try:
        state.backend = open_backend(config.getoption("gpuci_vram_backend"))
    except Exception as exc:
        if guard or per_worker:
            raise pytest.UsageError(f"gpuci: no VRAM backend for the guard or GPU pinning: {exc}") from None
        return
    if per_worker:
        _pin_worker(config, state, per_worker)
    else:
        state.devices = state.backend.devices()
    state.baseline = take_baseline(state.backend, state.devices)


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
    durations = _durations(config.getoption("gpuci_durations"))
    mine = set(shard_of([item.nodeid for item in items], count, durations)[index])
    keep = [item for item in items if item.nodeid in mine]
    config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in mine])
    items[:] = keep


def _durations(path: str | None) -> dict[str, float]:
    if not path:
        return {}
    try:
        return {str(k): float(v) for k, v in json.loads(Path(path).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def shard_of(test_ids: list[str], count: int, durations: dict[str, float]) -> list[list[str]]:
    """Split tests into `count` shares: longest first onto the least loaded share when durations
    are known (unknown tests count as the median), round-robin over sorted ids otherwise. The
    same inputs always give the same split, so every parallel job agrees without talking."""
    shares: list[list[str]] = [[] for _ in range(count)]
    ordered = sorted(test_ids)
    if not durations:
        for i, test in enumerate(ordered):
            shares[i % count].append(test)
        return shares
    known = sorted(durations.values())
    typical = known[len(known) // 2]
    load = [0.0] * count
    for test in sorted(ordered, key=lambda t: (-durations.get(t, typical), t)):
        target = min(range(count), key=lambda i: (load[i], i))
        shares[target].append(test)
        load[target] += durations.get(test, typical)
    return shares


class _DurationRecorder:
    """Each test's own duration, for the trend across runs and for balancing shards."""

    def __init__(self, state: PluginState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.state.records.append(Record(report.nodeid, "call", report.duration))


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
    assert state.backend is not None
    baseline = dict(state.baseline)
    result = wait_for_release(state.backend, state.devices, baseline, 0.0, state.tolerance)
    if not result.released:
        for device in state.devices:
            baseline[device.id] += _own_bytes(state.backend, device)
        result = wait_for_release(state.backend, state.devices, baseline, state.guard_timeout, state.tolerance)
    return result.released, result.seconds, [asdict(h) for h in result.holders]


@pytest.fixture(autouse=True)
def _gpuci_vram_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    state = _state(request.config)
    state.current_test = request.node.nodeid
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


def _ready(check: Callable[[], bool] | str | None) -> Callable[[], bool]:
    if check is None:
        return lambda: True
    if callable(check):
        return check
    url = check

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(200 <= response.status < 500)
        except OSError:
            return False

    return probe


class ServerProcess:
    """A test server: own process group, a ready check, tree teardown and a VRAM wait on exit."""

    def __init__(
        self,
        command: list[str],
        *,
        ready: Callable[[], bool] | str | None = None,
        ready_timeout: float = 300.0,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        grace: float = 10.0,
        backend: VramBackend | None = None,
        devices: list[Device] | None = None,
        vram_timeout: float = 60.0,
    ) -> None:
        self.command, self.env, self.cwd = command, env, cwd
        self.ready_check, self.ready_timeout, self.grace = _ready(ready), ready_timeout, grace
        self.backend, self.devices, self.vram_timeout = backend, devices or [], vram_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.baseline: Baseline | None = None
        self.stop_seconds: float | None = None

    def start(self) -> ServerProcess:
        if self.backend is not None:
            self.baseline = Baseline(time.time(), take_baseline(self.backend, self.devices))
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=self.cwd, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        while not self.ready_check():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.command[0]} exited {self.proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server {self.command[0]} not ready within {self.ready_timeout:.0f}s")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def stop(self) -> float:
        """Tree teardown, then one wait for VRAM back at this server's baseline; the seconds it took."""
        if self.proc is None or self.stop_seconds is not None:
            return self.stop_seconds or 0.0
        started = time.monotonic()
        terminate_tree(self.proc.pid, self.grace)
        self.proc.wait()
        if self.backend is not None and self.baseline is not None:
            wait_for_release(self.backend, self.devices, self.baseline.used, self.vram_timeout)
        self.stop_seconds = time.monotonic() - started
        return self.stop_seconds

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerPool:
    """Servers of one test; stopped together by `shutdown_many` (parallel terminate, one wait)."""

    def __init__(self, state: PluginState) -> None:
        self.state = state
        self.servers: list[ServerProcess] = []

    def start(self, command: list[str], **options: Any) -> ServerProcess:
        options.setdefault("backend", self.state.backend)
        options.setdefault("devices", self.state.devices)
        server = ServerProcess(command, **options).start()
        self.servers.append(server)
        return server

    def stop_all(self) -> float:
        running = [s for s in self.servers if s.proc is not None and s.stop_seconds is None]
        if not running:
            return 0.0
        started = time.monotonic()
        shutdown_many(
            [s.pid for s in running],
            max(s.grace for s in running),
            [s.baseline for s in running],
            self.state.backend,
            self.state.devices or None,
            max(s.vram_timeout for s in running),
        )
        for server in running:
            server.proc.wait()  # type: ignore[union-attr]
            server.stop_seconds = time.monotonic() - started
        seconds = time.monotonic() - started
        self.state.record("shutdown-many", seconds, self.state.budget)
        return seconds


@pytest.fixture
def gpuci_servers(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    pool = ServerPool(_state(request.config))
    yield pool
    pool.stop_all()


# ---------------------------------------------------------------- timings


@dataclass(frozen=True)
class ShutdownMeasurement:
    seconds: float
    budget: float
    signal: str

    @property
    def margin(self) -> float:
        return self.budget - self.seconds


class ShutdownTimer:
    def __init__(self, state: PluginState) -> None:
        self.state = state

    @property
    def budget(self) -> float:
        return self.state.budget

    def measure(
        self, proc: subprocess.Popen[Any], signum: int = signal.SIGTERM, timeout: float = 120
    ) -> ShutdownMeasurement:
        """Signal the process and block until it exits (no busy wait); record the time."""
        started = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=timeout)
        seconds = time.monotonic() - started
        self.state.record("shutdown", seconds, self.budget)
        return ShutdownMeasurement(seconds, self.budget, signal.Signals(signum).name)

    def assert_within_budget(self, measured: ShutdownMeasurement, margin: float = DEFAULT_MARGIN_S) -> None:
        """Fail only past budget + margin, and say by how much."""
        limit = measured.budget + margin
        if measured.seconds > limit:
            pytest.fail(
                f"shutdown after {measured.signal} took {measured.seconds:.3f}s: "
                f"{measured.seconds - limit:.3f}s over the {self.state.platform} budget of "
                f"{measured.budget:.2f}s plus a margin of {margin:.2f}s",
                pytrace=False,
            )


@pytest.fixture
def gpuci_shutdown_timer(request: pytest.FixtureRequest) -> ShutdownTimer:
    return ShutdownTimer(_state(request.config))


class StartupTimer:
    def __init__(self, state: PluginState) -> None:
        self.state = state

    def measure(self, start: Callable[[], Any], kind: str = "cold") -> tuple[Any, float]:
        """Run `start` (an engine start, with or without a compile cache); its result and seconds."""
        started = time.monotonic()
        result = start()
        seconds = time.monotonic() - started
        self.state.record(f"startup-{kind}", seconds)
        return result, seconds


@pytest.fixture
def gpuci_startup_timer(request: pytest.FixtureRequest) -> StartupTimer:
    return StartupTimer(_state(request.config))
