"""Teardown proofs on a real NVIDIA GPU (host mode; no Docker on the test machine).

Run from the repository root:  python bench/gpu/teardown_h100.py OUT.json
Each scenario runs gpuci's own supervisor, teardown and NVML backend against torch processes
holding GPU memory, and records the measured figures.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.declare.stop_policy import StopPolicy  # noqa: E402
from harness.gpu.vendors.cuda import NvmlBackend  # noqa: E402
from harness.gpu.vram.release import (  # noqa: E402
    VramWatch,
    take_baseline,
    wait_for_release,
)
from harness.redact import Redactor  # noqa: E402
from harness.run.host.process import HostWorkload  # noqa: E402
from harness.run.logs import LogTarget  # noqa: E402
from harness.run.supervise.supervisor import supervise  # noqa: E402
from harness.teardown.process_tree import Baseline, become_subreaper, shutdown_many, terminate_tree  # noqa: E402

HOLDER = [sys.executable, str(ROOT / "bench" / "gpu" / "torch_holder.py")]
GIB = 1024**3
LOGS = Path(os.environ.get("GPUCI_BENCH_LOGS", "/tmp/gpuci-bench-logs"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_used_at_least(backend: NvmlBackend, device: Any, target: int, timeout: float = 120) -> float:
    started = time.monotonic()
    while backend.used_bytes(device) < target:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"GPU memory never reached {target} bytes")
        time.sleep(0.02)
    return time.monotonic() - started


def cancel_when_holding(backend: NvmlBackend, device: Any, target: int) -> None:
    """Once the workload holds its memory, SIGTERM ourselves: the Buildkite agent's cancel."""

    def run() -> None:
        wait_used_at_least(backend, device, target)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=run, daemon=True).start()


def supervised(name: str, command: list[str], backend: NvmlBackend, gib: float, cancel: bool, grace: float) -> dict:
    device = backend.devices()[0]
    baseline = backend.used_bytes(device)
    if cancel:
        cancel_when_holding(backend, device, baseline + int(gib * GIB * 0.9))
    LOGS.mkdir(parents=True, exist_ok=True)
    workload = HostWorkload(command, dict(os.environ), ROOT, LogTarget(LOGS / f"{name}.log", Redactor(), echo=False))
    result = supervise(
        workload,
        timeout_s=120,
        budget_s=2.1,
        stop=StopPolicy(grace_s=grace),
        vram=VramWatch(backend, [device], timeout_s=30),
    )
    release = result.release
    assert release is not None
    record = {
        "scenario": name,
        "command": " ".join(command[1:]),
        "stop_reason": result.stop_reason,
        "signals_sent": result.signals_sent,
        "exit_code": result.exit_code,
        "timings_s": {k: round(v, 6) for k, v in result.timings.items()},
        "stop_to_vram_back_s": round(result.timings.get("stop_to_vram_back_s", 0), 6),
        "budget_s": result.budget_s,
        "budget_margin_s": None if result.budget_margin_s is None else round(result.budget_margin_s, 6),
        "baseline_bytes": baseline,
        "final_bytes": release.final_used[device.id],
        "released": release.released,
        "leftover_pids_killed": workload.leftovers,
        "survivors": workload.survivors,
    }
    log(f"{name}: {json.dumps(record)}")
    return record


def nvml_vs_nvidia_smi(backend: NvmlBackend) -> list[dict]:
    device = backend.devices()[0]
    rows = []
    proc = None
    for state in ("idle", "holding 4 GiB"):
        if state != "idle":
            base = backend.used_bytes(device)
            proc = subprocess.Popen([*HOLDER, "--gib", "4"], stdout=subprocess.DEVNULL)
            wait_used_at_least(backend, device, base + int(3.9 * GIB))
        smi = ""
        for query in ("memory.used,memory.total,memory.reserved", "memory.used,memory.total"):
            smi = subprocess.run(
                ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            if smi[:1].isdigit():
                break
        fields = [f.strip() for f in smi.split(",")]
        used_v2 = backend.used_bytes(device)
        used_v1 = int(backend._nvml.nvmlDeviceGetMemoryInfo(backend._handles[0]).used)
        holders = backend.holders(device)
        rows.append(
            {
                "state": state,
                "nvml_used_v2_bytes": used_v2,
                "nvml_used_v1_bytes": used_v1,
                "nvml_total_bytes": device.total_bytes,
                "nvidia_smi_used_mib": float(fields[0]),
                "nvidia_smi_total_mib": float(fields[1]),
                "nvidia_smi_reserved_mib": float(fields[2]) if len(fields) > 2 and fields[2][:1].isdigit() else None,
                "nvml_used_v2_mib": round(used_v2 / 2**20, 1),
                "diff_v2_vs_smi_mib": round(used_v2 / 2**20 - float(fields[0]), 1),
                "holders": [{"pid": h.pid, "used_bytes": h.used_bytes} for h in holders],
                "holder_is_our_process": bool(proc and any(h.pid == proc.pid for h in holders)),
            }
        )
    if proc:
        proc.kill()
        proc.wait()
    return rows


def query_cost(backend: NvmlBackend) -> dict:
    device = backend.devices()[0]
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        backend.used_bytes(device)
    used = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for _ in range(200):
        backend.holders(device)
    holders = (time.perf_counter() - t) / 200
    return {"used_bytes_query_us": round(used * 1e6, 2), "holders_query_us": round(holders * 1e6, 2)}


def start_holders(count: int, args: list[str], new_session: bool = False) -> list[subprocess.Popen]:
    """Start holders in parallel; return once each has said that it holds its memory."""
    procs = [
        subprocess.Popen([*HOLDER, *args], stdout=subprocess.PIPE, text=True, start_new_session=new_session)
        for _ in range(count)
    ]
    for proc in procs:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if "holds" not in line:
            raise RuntimeError(f"holder {proc.pid} did not start: {line!r}")
    return procs


def release_latency(backend: NvmlBackend, count: int = 10, gib: float = 2.0) -> dict:
    """SIGKILL holders one by one; time from exit (pidfd) to NVML showing memory back."""
    device = backend.devices()[0]
    procs = start_holders(count, ["--gib", str(gib)])
    samples = []
    for proc in procs:
        before = backend.used_bytes(device)
        fd = os.pidfd_open(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        select.select([fd], [], [])
        exited = time.perf_counter()
        os.close(fd)
        polls = 0
        while backend.used_bytes(device) > before - int(gib * GIB * 0.95):
            polls += 1
            if time.perf_counter() - exited > 30:
                raise TimeoutError("memory of a killed holder never came back")
        noticed = time.perf_counter()
        proc.wait()
        samples.append({"exit_to_noticed_ms": round((noticed - exited) * 1e3, 3), "polls": polls})
    values = [s["exit_to_noticed_ms"] for s in samples]
    return {"samples": samples, "median_ms": statistics.median(values), "max_ms": max(values)}


def start_servers(n: int, backend: NvmlBackend, gib: float, delay: float) -> tuple[list[subprocess.Popen], Baseline]:
    device = backend.devices()[0]
    baseline = Baseline(time.time(), take_baseline(backend, [device]))
    procs = start_holders(n, ["--gib", str(gib), "--shutdown-delay", str(delay)], new_session=True)
    return procs, baseline


def shutdown_comparison(backend: NvmlBackend, n: int = 8, gib: float = 4.0, delay: float = 0.3) -> dict:
    device = backend.devices()[0]
    results: dict[str, Any] = {"servers": n, "gib_each": gib, "shutdown_delay_s": delay}
    for label, count in (("shutdown_many_1", 1), (f"shutdown_many_{n}", n)):
        procs, baseline = start_servers(count, backend, gib, delay)
        t = time.perf_counter()
        many = shutdown_many(
            [p.pid for p in procs], StopPolicy(grace_s=5), baselines=[baseline], backend=backend, devices=[device]
        )
        results[label + "_s"] = round(time.perf_counter() - t, 4)
        results[label + "_exit_s"] = round(many.exit_seconds, 4)
        results[label + "_vram_wait_s"] = round(many.release.seconds, 4) if many.release else None
        results[label + "_released"] = bool(many.release and many.release.released)
        for p in procs:
            p.wait()
    procs, baseline = start_servers(n, backend, gib, delay)
    t = time.perf_counter()
    for p in procs:  # the old way: one server at a time, each with its own wait
        terminate_tree(p.pid, StopPolicy(grace_s=5))
        p.wait()
        wait_for_release(backend, [device], take_baseline(backend, [device]), timeout=30)
    wait_for_release(backend, [device], baseline.used, timeout=30)
    results[f"sequential_{n}_s"] = round(time.perf_counter() - t, 4)
    results["ratio_many_n_over_1"] = round(results[f"shutdown_many_{n}_s"] / results["shutdown_many_1_s"], 3)
    results["ratio_sequential_over_many"] = round(results[f"sequential_{n}_s"] / results[f"shutdown_many_{n}_s"], 3)
    log(f"shutdown comparison: {results}")
    return results


def supervisor_overhead(backend: NvmlBackend, runs: int = 20) -> dict:
    """Teardown overhead after the workload's own exit: removal of leftovers plus the VRAM check."""
    device = backend.devices()[0]
    samples = []
    for i in range(runs):
        log = LogTarget(LOGS / f"overhead-{i}.log", Redactor(), echo=False)
        workload = HostWorkload(["true"], dict(os.environ), ROOT, log)
        t = time.perf_counter()
        result = supervise(workload, timeout_s=30, budget_s=2.1, vram=VramWatch(backend, [device], timeout_s=10))
        total = time.perf_counter() - t
        samples.append(
            {
                "after_exit_ms": round((result.timings["remove_s"] + result.timings["vram_back_s"]) * 1e3, 3),
                "total_minus_run_ms": round((total - result.timings["run_s"]) * 1e3, 3),
            }
        )
    return {
        "runs": runs,
        "median_after_exit_ms": statistics.median(s["after_exit_ms"] for s in samples),
        "median_total_minus_run_ms": statistics.median(s["total_minus_run_ms"] for s in samples),
        "samples": samples,
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "results" / "h100-teardown.json"
    become_subreaper()
    backend = NvmlBackend()
    device = backend.devices()[0]
    log(f"device: {device}")
    previous = json.loads(out.read_text()) if out.exists() else {}
    report: dict[str, Any] = {
        "machine": {
            "gpu": device.name,
            "total_bytes": device.total_bytes,
            "host": platform.node(),
            "python": platform.python_version(),
            "memory_info_v2": backend._memory_v2,
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    def section(name: str, fn: Any) -> None:
        done = previous.get(name)
        if done and not (isinstance(done, dict) and "error" in done):
            report[name] = done  # measured by an earlier call: kept, not re-run
            return
        try:
            report[name] = fn()
        except Exception as exc:  # one broken section must not lose the others' figures
            report[name] = {"error": repr(exc)}
            log(f"{name} failed: {exc!r}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))

    section("nvml_query_cost", lambda: query_cost(backend))
    section("nvml_vs_nvidia_smi", lambda: nvml_vs_nvidia_smi(backend))
    section(
        "scenarios",
        lambda: [
            supervised("sigterm", [*HOLDER, "--gib", "6"], backend, 6, cancel=True, grace=3),
            supervised("sigkill_after_grace", [*HOLDER, "--gib", "6", "--ignore-sigterm"], backend, 6, True, grace=1),
            supervised("setsid_escapee", [*HOLDER, "--gib", "6", "--escape"], backend, 6, cancel=False, grace=3),
            supervised(
                "pid_namespace_pid1",
                ["unshare", "--pid", "--fork", "--mount-proc", *HOLDER, "--gib", "6"],
                backend,
                6,
                True,
                grace=1,
            ),
        ],
    )
    section("supervisor_overhead", lambda: supervisor_overhead(backend))
    section("release_latency", lambda: release_latency(backend))
    section("shutdown_many", lambda: shutdown_comparison(backend))
    section("shutdown_many_slow_engines", lambda: shutdown_comparison(backend, delay=2.0))
    log(f"wrote {out}")
    backend.close()


if __name__ == "__main__":
    main()
