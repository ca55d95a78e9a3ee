"""gpuci's pytest plugin, run on real test files through pytester, on simulated GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest_plugins = ["pytester"]

HOLD = """
import os, subprocess, sys, time
HOLDER = [sys.executable, "-m", "harness", "simgpu", "hold", "1GiB", "--release-lag", "LAG"]

def start():
    proc = subprocess.Popen(HOLDER, stdout=subprocess.PIPE, text=True)
    assert "holding" in proc.stdout.readline()
    return proc
"""


@pytest.fixture
def project(pytester: pytest.Pytester, sim_gpus: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("GPUCI_PLATFORM", "cpu")
    monkeypatch.setenv("GPUCI_REPORT_DIR", str(pytester.path / "report"))
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)  # this suite's own worker identity is not the inner pytest's
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "harness.pytest_plugin", "-p", "no:cacheprovider", *args)


def test_the_guard_waits_for_a_lagging_release_before_the_next_test(project: pytest.Pytester) -> None:
    """The ROCm incident: the first engine's memory is still counted when the second starts."""
    project.makepyfile(
        helpers=HOLD.replace("LAG", "1.5"),
        test_engines="""
from helpers import start
from harness.gpu.vram import sim

def test_first():
    proc = start()
    proc.terminate(); proc.wait()

def test_second():
    held = sim.hold(8 << 30, 0)  # the whole device: fails if the first engine's memory is counted
    held.release()
""",
    )
    assert run(project, "--gpuci-vram-guard").ret == 0
    records = json.loads((project.path / "report" / "pytest-records.json").read_text())
    # The guard waited after test_first (its first look starts the lag, so a wait is always recorded);
    # how long is load's business: the run passing where the unguarded one fails shows it waited enough.
    waits = [r for r in records if r["phase"] == "vram-wait-after" and r["test"].endswith("test_first")]
    assert waits and waits[0]["seconds"] > 0
    without = run(project, "--gpuci-no-vram-guard")
    assert without.ret == 1
    without.stdout.fnmatch_lines(["*OutOfMemory*"])


def test_a_leaking_test_fails_its_teardown_naming_the_holder(project: pytest.Pytester) -> None:
    project.makepyfile(
        helpers=HOLD.replace("LAG", "0"),
        test_leak="""
from helpers import start
LEAKED = []

def test_leaks():
    LEAKED.append(start())  # never stopped

def test_next():
    LEAKED[0].kill(); LEAKED[0].wait()
""",
    )
    result = run(project, "--gpuci-vram-guard", "--gpuci-vram-timeout", "1")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*was not released within 1s*holders: pid *simgpu hold 1GiB*"])


def test_shutdown_budget_assertions_state_the_margin(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_budget="""
import subprocess, sys

# Short sleeps, not one of 60 s: a SIGTERM that lands between the print and the sleep's system call
# runs its handler only once that sleep ends (it took 63 s under load in a twin run of the suite).
SLOW = ("import signal, time; signal.signal(signal.SIGTERM, lambda *a: (time.sleep(3), exit(0)));"
        "print(1, flush=True)\\nwhile True: time.sleep(0.05)")

def test_slow(gpuci_shutdown_timer):
    proc = subprocess.Popen([sys.executable, "-c", SLOW], stdout=subprocess.PIPE)
    proc.stdout.readline()
    measured = gpuci_shutdown_timer.measure(proc)
    assert measured.budget == 2.1
    gpuci_shutdown_timer.assert_within_budget(measured, margin=0.5)

def test_fast(gpuci_shutdown_timer):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gpuci_shutdown_timer.assert_within_budget(gpuci_shutdown_timer.measure(proc))
""",
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*shutdown after SIGTERM took 3.*s over the cpu budget of 2.10s plus a margin of 0.50s*"]
    )
    records = json.loads((project.path / "report" / "pytest-records.json").read_text())
    assert [r["phase"] for r in records if r["phase"] != "call"] == ["shutdown", "shutdown"]


def test_xdist_workers_get_disjoint_leased_gpus(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_pin="""
import os, pytest

@pytest.mark.parametrize("i", range(4))
def test_pinned(i, worker_id):
    open(f"seen-{worker_id}-{i}", "w").write(os.environ["GPUCI_SIM_VISIBLE_DEVICES"])
""",
    )
    assert run(project, "-n", "2", "--gpuci-gpus-per-worker", "1").ret == 0
    seen: dict[str, set[str]] = {}
    for path in project.path.glob("seen-*"):
        seen.setdefault(path.name.split("-")[1], set()).add(path.read_text())
    assert len(seen) == 2 and all(len(v) == 1 for v in seen.values())
    assert set.union(*seen.values()) == {"0", "1"}  # each worker its own device


def test_a_worker_is_pinned_before_any_conftest_is_imported(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
import os
# What a conftest that imports torch at the top would see: the worker's GPUs, already.
SEEN_AT_IMPORT = os.environ.get("GPUCI_SIM_VISIBLE_DEVICES")
"""
    )
    project.makepyfile(
        test_early="""
import conftest

def test_seen(worker_id):
    open(f"early-{worker_id}", "w").write(str(conftest.SEEN_AT_IMPORT))
"""
    )
    assert run(project, "-n", "2", "--gpuci-gpus-per-worker", "1", "-p", "xdist").ret == 0
    seen = sorted(p.read_text() for p in project.path.glob("early-*"))
    assert seen in (["0"], ["1"]) or seen == ["0", "1"]  # one test: one worker ran it, pinned at import


@pytest.fixture
def pinning_env():
    """pin_worker sets the visible-devices variables in os.environ, as a worker must: undone after."""
    names = ("GPUCI_SIM_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
    saved = {name: os.environ.pop(name, None) for name in names}
    yield
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


def test_the_visible_variable_follows_the_backend_not_the_platform(sim_gpus: Path, monkeypatch, pinning_env) -> None:
    from harness.plugin.pinning import pin_worker, visible_env

    monkeypatch.setenv("GPUCI_PLATFORM", "cuda")  # a cuda run's name, but the GPUs are the sim backend's
    monkeypatch.setenv("GPUCI_LOCK_DIR", str(sim_gpus))
    pinned = pin_worker("gw1", 1, "sim")
    try:
        assert pinned.variable == "GPUCI_SIM_VISIBLE_DEVICES" and pinned.value == "1"
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    finally:
        pinned.lease.release()  # type: ignore[union-attr]
        pinned.backend.close()
    from harness.gpu.vram.base import Device

    gpus = [Device(3, "GPU-aaaa", "H200", 1), Device(5, "GPU-bbbb", "H200", 1)]
    # NVML by UUID (CUDA's order may not be NVML's); amdsmi and sim by the backend's index.
    assert visible_env("nvml", gpus) == {"CUDA_VISIBLE_DEVICES": "GPU-aaaa,GPU-bbbb"}
    assert visible_env("amdsmi", gpus) == {"HIP_VISIBLE_DEVICES": "3,5"}
    assert visible_env("sim", gpus) == {"GPUCI_SIM_VISIBLE_DEVICES": "3,5"}


def test_inside_a_run_workers_divide_the_runs_gpus_without_a_second_lease(
    sim_gpus: Path, monkeypatch, pinning_env
) -> None:
    from harness.gpu import lease
    from harness.gpu.vram import sim
    from harness.plugin.pinning import pin_worker

    monkeypatch.setenv("GPUCI_LOCK_DIR", str(sim_gpus))
    devices = sim.SimBackend(sim_gpus).devices()
    held = lease.acquire(devices, 2, "the run itself")  # what the run holds while its pytest runs
    monkeypatch.setenv("GPUCI_RUN_GPUS", ",".join(d.id for d in devices))
    try:
        first = pin_worker("gw0", 1, "sim")  # a second lease against the run: 60 s of waiting, then failure
        os.environ.pop("GPUCI_SIM_VISIBLE_DEVICES")  # each worker is its own process
        second = pin_worker("gw1", 1, "sim")
        assert [first.value, second.value] == ["0", "1"]
        assert first.lease is None and second.lease is None
        first.backend.close()
        second.backend.close()
    finally:
        held.release()


def test_the_plugin_costs_pytest_no_http_stack_until_a_server_has_a_url(tmp_path: Path) -> None:
    # Loaded at every pytest start in every container: urllib.request (ssl, http.client) only when
    # a server's ready check is a URL.
    code = (
        "import sys, socket, pytest, harness.pytest_plugin\n"
        "assert 'urllib.request' not in sys.modules, 'imported at load'\n"
        "from harness.plugin.servers import ready_check\n"
        # Bound and never listening, and kept so until the probe ran: no other process can take the port.
        "sock = socket.socket(); sock.bind(('127.0.0.1', 0)); port = sock.getsockname()[1]\n"
        "print(ready_check(f'http://127.0.0.1:{port}/health')())\n"
        "sock.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # nothing listens there: the probe ran, and said not ready
