from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from harness.declare.stop_policy import StopPolicy
from harness.gpu.vram import sim
from harness.teardown.process_tree import (
    Baseline,
    become_subreaper,
    earliest_baseline,
    shutdown_many,
    terminate_tree,
)

SERVER = """
import os, signal, subprocess, sys, time
from harness.gpu.vram import sim
children = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']) for _ in range(2)]
held = sim.hold(1 << 30, 0)
def stop(*_):
    if os.environ.get('MARKS'):
        open(os.path.join(os.environ['MARKS'], str(os.getpid())), 'w').write(repr(time.time()))
    time.sleep(DELAY)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
print('ready', flush=True)
time.sleep(60)
"""


def start_server(delay: float = 0.0, marks: str = "") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.replace("DELAY", str(delay))],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "MARKS": marks},
    )
    assert proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
    return proc


def test_the_whole_tree_is_terminated_not_only_its_root(sim_gpus) -> None:
    server = start_server()
    tree = [server.pid, *(c.pid for c in psutil.Process(server.pid).children(recursive=True))]
    assert len(tree) == 3
    result = terminate_tree(server.pid, StopPolicy(grace_s=5))
    server.wait()
    assert result.clean and sorted(result.signalled) == sorted(tree)
    assert not [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_survivors_of_sigterm_get_sigkill() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN);print('ok', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.stdout.readline()  # type: ignore[union-attr]
    result = terminate_tree(proc.pid, StopPolicy(grace_s=0.5))
    assert proc.wait() == -9
    assert result.killed == [proc.pid] and result.clean


def test_a_setsid_escapee_is_found_through_the_subreaper() -> None:
    assert become_subreaper()
    marker = f"escapee-{os.getpid()}-{time.time_ns()}"
    proc = subprocess.run(
        [sys.executable, "-c", "import os,time\nif os.fork()==0:\n os.setsid(); time.sleep(60)\n", marker],
        timeout=10,
    )
    assert proc.returncode == 0

    def cmdline(p: psutil.Process) -> str:
        try:
            return " ".join(p.cmdline())
        except psutil.Error:  # zombies and the already gone: not our escapee
            return ""

    orphans = [p for p in psutil.Process().children() if marker in cmdline(p)]
    assert len(orphans) == 1  # re-parented to us, not to init
    result = terminate_tree(orphans[0].pid, StopPolicy(grace_s=2))
    assert result.clean


def test_a_zero_byte_baseline_is_still_the_earliest() -> None:
    # The old helper's `baseline or inf` skipped a 0-byte baseline and picked a later one.
    first = Baseline(taken_at=1.0, used={"gpu": 0})
    later = Baseline(taken_at=2.0, used={"gpu": 4 << 30})
    assert earliest_baseline([later, first, None]) is first
    assert earliest_baseline([None, None]) is None


def test_shutdown_many_terminates_in_parallel_and_waits_once(sim_gpus, tmp_path) -> None:
    backend = sim.SimBackend(sim_gpus)
    device = backend.devices()[0]
    baselines = []
    servers = []
    marks = tmp_path / "sigterm-received"
    marks.mkdir()
    for _ in range(4):
        baselines.append(Baseline(time.time(), {device.id: backend.used_bytes(device)}))
        servers.append(start_server(delay=1.0, marks=str(marks)))
    assert backend.used_bytes(device) == 4 << 30
    result = shutdown_many(
        [s.pid for s in servers], StopPolicy(grace_s=5), baselines=baselines, backend=backend, devices=[device]
    )
    for server in servers:
        assert server.wait() == 0
    assert result.baseline is baselines[0] and result.baseline.used[device.id] == 0
    assert result.release is not None and result.release.released
    assert len(result.trees.signalled) == 12 and result.trees.clean
    # Every server got SIGTERM before the first one (1 s of shutdown each) had finished.
    received = sorted(float(p.read_text()) for p in marks.iterdir())
    assert len(received) == 4 and received[-1] - received[0] < 1.0
    assert os.environ.get("GPUCI_SIM_GPUS") == str(sim_gpus)
