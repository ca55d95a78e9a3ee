"""GPU passthrough into a real container on the H100, with no Docker there: runc from Debian.

Run from the repository root:  python bench/gpu/container_h100.py DEBS_DIR OUT.json
DEBS_DIR holds Debian bookworm's runc and tini packages (`apt-get download runc tini`). gpuci
writes an OCI bundle from a RunSpec and the NVIDIA raw-node device options (harness/run/container/oci.py),
runs it with runc under its own supervisor and NVML backend, and records:
- torch inside the container sees the H100 and allocates;
- stop of a torch process that is the container's PID 1 (SIGTERM ignored → SIGKILL after the
  grace) against the same behind tini as init (SIGTERM → exit), with VRAM release detected;
- an escapee of a container sharing the host's PID namespace, named by its host PID from NVML
  and the container's cgroup after the init exited, and killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.declare.stop_policy import StopPolicy  # noqa: E402
from harness.gpu.vendors.cuda import NvmlBackend, nvidia_options  # noqa: E402
from harness.gpu.vram.release import VramWatch  # noqa: E402
from harness.redact import Redactor  # noqa: E402
from harness.run.container.oci import write_bundle  # noqa: E402
from harness.run.container.runc import RuncWorkload  # noqa: E402
from harness.run.spec import BindMount, RunSpec  # noqa: E402
from harness.run.supervise.supervisor import supervise  # noqa: E402

GIB = 1024**3
HOLDER = [sys.executable, "/workspace/bench/gpu/torch_holder.py", "--gib", "4"]
INIT = "/gpuci-init/tini-static"


def unpack(debs: Path) -> tuple[str, str]:
    for deb, target in (("runc_*.deb", "/tmp/gpuci-runc"), ("tini_*.deb", "/tmp/gpuci-tini")):
        package = next(debs.glob(deb))
        subprocess.run(["dpkg-deb", "-x", str(package), target], check=True)
    runc = "/tmp/gpuci-runc/usr/sbin/runc"
    print(subprocess.run([runc, "--version"], capture_output=True, text=True).stdout, flush=True)
    return runc, "/tmp/gpuci-tini/usr/bin"


class NamingRunc(RuncWorkload):
    """Records NVML's holders (host PIDs) at the moment gpuci looks for what outlived the init."""

    backend: NvmlBackend
    nvml_holders: list[dict[str, Any]]

    def remove(self) -> bool:
        device = self.backend.devices()[0]
        self.nvml_holders = [{"pid": h.pid, "used_bytes": h.used_bytes} for h in self.backend.holders(device)]
        return super().remove()


def cancel_when_holding(backend: NvmlBackend, target: int) -> None:
    def run() -> None:
        device = backend.devices()[0]
        deadline = time.monotonic() + 120
        while backend.used_bytes(device) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)  # the Buildkite agent's cancel

    threading.Thread(target=run, daemon=True).start()


def scenario(
    name: str,
    command: list[str],
    runc: str,
    tini_dir: str,
    backend: NvmlBackend,
    *,
    cancel: bool,
    pid_namespace: bool = True,
    grace: float = 3.0,
) -> dict[str, Any]:
    device = backend.devices()[0]
    options = nvidia_options([device], has_nvidia_runtime=False)
    container_id = f"gpuci-h100-{name}"
    spec = RunSpec(
        image="host-rootfs",
        command=tuple(command),
        name=container_id,
        env={"PYTHONPATH": "/workspace", "PYTHONUNBUFFERED": "1", "HOME": "/tmp", **options.env},
        mounts=(BindMount(str(ROOT), "/workspace", read_only=True),),
        working_dir="/workspace",
        labels={"gpuci.run-id": container_id},
    )
    bundle = Path("/tmp/gpuci-oci") / container_id
    write_bundle(
        spec,
        bundle,
        device_nodes=options.nodes,
        extra_mounts=((tini_dir, "/gpuci-init"),),
        pid_namespace=pid_namespace,
    )
    log = Path("/tmp/gpuci-oci") / f"{name}.log"
    workload = NamingRunc(runc, bundle, container_id, log, Redactor(), cgroup=f"/gpuci/{container_id}", echo=False)
    workload.backend, workload.nvml_holders = backend, []
    baseline = backend.used_bytes(device)
    if cancel:
        cancel_when_holding(backend, baseline + int(3.6 * GIB))
    result = supervise(
        workload,
        timeout_s=180,
        budget_s=2.1,
        stop=StopPolicy(grace_s=grace, kill_wait_s=10),
        vram=VramWatch(backend, [device], timeout_s=30),
    )
    release = result.release
    text = log.read_text(errors="replace")
    record = {
        "scenario": name,
        "command": command,
        "pid_namespace": pid_namespace,
        "device_route": options.route,
        "device_nodes": list(options.nodes),
        "stop_reason": result.stop_reason,
        "signals_sent": result.signals_sent,
        "exit_code": result.exit_code,
        "timings_s": {k: round(v, 6) for k, v in result.timings.items()},
        "baseline_bytes": baseline,
        "released": bool(release and release.released),
        "vram_wait_s": round(release.seconds, 6) if release else None,
        "leftover_host_pids": workload.leftovers,
        "nvml_holders_when_init_exited": workload.nvml_holders,
        "escapee_named_by_nvml": bool(set(workload.leftovers) & {h["pid"] for h in workload.nvml_holders}),
        "survivors": workload.survivors,
        "torch_saw": [line for line in text.splitlines() if "torch sees" in line][:2],
        "log_tail": text.splitlines()[-6:],
    }
    print(json.dumps(record, indent=1), flush=True)
    return record


def main() -> None:
    runc, tini_dir = unpack(Path(sys.argv[1]))
    out = Path(sys.argv[2])
    backend = NvmlBackend()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gpu": backend.devices()[0].name,
        "scenarios": [],
    }
    runs = [
        ("pid1-no-init", HOLDER, {"cancel": True}),
        ("tini-init", [INIT, "--", *HOLDER], {"cancel": True}),
        ("escapee-host-pidns", [INIT, "--", *HOLDER, "--escape"], {"cancel": False, "pid_namespace": False}),
    ]
    for name, command, options in runs:
        try:
            results["scenarios"].append(scenario(name, command, runc, tini_dir, backend, **options))
        except Exception as exc:  # keep the other scenarios' figures
            results["scenarios"].append({"scenario": name, "error": repr(exc)})
            print(f"{name} failed: {exc!r}", flush=True)
        out.write_text(json.dumps(results, indent=2))
    backend.close()


if __name__ == "__main__":
    main()
