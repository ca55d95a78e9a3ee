"""gpuci's OCI path (harness/run/container/oci.py + runc.py) with the host's runc, as on GPU hosts with no Docker.

The same stops as in Docker: a PID 1 with no init ignores SIGTERM, an init forwards it, and an
escapee of a container sharing the host's PID namespace is found in its cgroup and killed.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from harness.declare.stop_policy import StopPolicy
from harness.gpu.vram import sim
from harness.gpu.vram.release import VramWatch
from harness.redact import Redactor
from harness.run.container.oci import write_bundle
from harness.run.container.runc import RuncWorkload
from harness.run.logs import LogTarget
from harness.run.spec import BindMount, RunSpec
from harness.run.supervise.supervisor import supervise
from tests.conftest import ROOT

PY = "/usr/bin/python3"  # the host's system Python: the container sees the host's /usr
HOLD = (
    "from harness.gpu.vram import sim; import time; h = sim.hold(1 << 30, 0); "
    "print('held', flush=True); time.sleep(300)"
)
ESCAPE = (
    "import os, time\nfrom harness.gpu.vram import sim\nr, w = os.pipe()\nif os.fork() == 0:\n"
    "    os.setsid(); h = sim.hold(1 << 30, 0); os.write(w, b'k'); time.sleep(300)\n"
    "os.read(r, 1); print('escaped', flush=True)\n"
)


@pytest.fixture
def runc() -> str:
    found = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)
    if found is None or os.geteuid() != 0:
        pytest.fail("these tests need runc (it comes with Docker's engine) and root, as CI has")
    return found


def run(
    runc: str,
    tmp_path: Path,
    sim_gpus: Path,
    command: list[str],
    *,
    pid_namespace: bool = True,
    timeout: float | None = None,
) -> tuple[RuncWorkload, object]:
    # Unique on the host: its cgroup (/gpuci/NAME) is host-wide, and a twin suite runs the same test.
    name = f"gpuci-test-{uuid.uuid4().hex[:12]}"
    spec = RunSpec(
        image="host-rootfs",
        command=tuple(command),
        name=name,
        working_dir="/workspace",
        env={"PYTHONPATH": "/src", "GPUCI_SIM_GPUS": "/sim", "PYTHONUNBUFFERED": "1"},
        mounts=(
            BindMount(str(ROOT), "/src", read_only=True),
            BindMount(str(sim_gpus), "/sim"),
            BindMount(str(tmp_path), "/workspace"),
        ),
    )
    write_bundle(spec, tmp_path / "bundle", pid_namespace=pid_namespace)
    workload = RuncWorkload(
        runc,
        tmp_path / "bundle",
        name,
        LogTarget(tmp_path / "out.log", Redactor(), echo=False),
        cgroup=f"/gpuci/{name}",
        state_root=tmp_path / "state",
    )
    backend = sim.SimBackend(sim_gpus)
    result = supervise(
        workload,
        timeout_s=timeout,
        budget_s=2.1,
        stop=StopPolicy(grace_s=1.0, kill_wait_s=10),
        vram=VramWatch(backend, backend.devices()[:1], timeout_s=10),
    )
    return workload, result


def test_pid1_without_an_init_ignores_sigterm(runc, tmp_path, sim_gpus) -> None:
    _, result = run(runc, tmp_path, sim_gpus, [PY, "-c", HOLD], timeout=3)
    assert result.signals_sent == ["SIGTERM", "SIGKILL"]  # SIGTERM did nothing: it took SIGKILL
    assert result.release.released and result.removed


def test_an_init_forwards_sigterm(runc, tmp_path, sim_gpus) -> None:
    _, result = run(runc, tmp_path, sim_gpus, ["/usr/bin/tini", "--", PY, "-c", HOLD], timeout=3)
    assert result.signals_sent == ["SIGTERM"] and result.timings["exited_s"] < 1.0
    assert result.release.released and result.removed


def test_an_escapee_sharing_the_host_pid_namespace_is_found_in_the_cgroup_and_killed(runc, tmp_path, sim_gpus) -> None:
    workload, result = run(runc, tmp_path, sim_gpus, ["/usr/bin/tini", "--", PY, "-c", ESCAPE], pid_namespace=False)
    assert result.exit_code == 0 and result.stop_reason == "exited"
    assert len(workload.leftovers) == 1 and workload.survivors == []  # the escapee, by host PID
    assert result.release.released and result.removed
    assert "escaped" in (tmp_path / "out.log").read_text() and sys.platform == "linux"
