"""The pytest plugin and the sampler area on a real NVIDIA GPU (host mode; no Docker there).

Run from the repository root:  python bench/gpu/plugin_h100.py OUT.json
1. Two engines in one test file, each holding 60% of the GPU, the first one's memory held for
   LAG seconds after it exits (a lingering process, as ROCm's delayed release): with gpuci's
   VRAM guard the file passes; without it the second engine runs out of memory.
2. The whole sampler area through `python -m harness run --platform cuda --no-container`:
   NVML backend, lease, CUDA_VISIBLE_DEVICES pinning, report with per-test records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAG = "10"


def pytest_run(guard: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GPUCI_PLATFORM": "cuda",
        "SAMPLER_RELEASE_LAG": LAG,
        "SAMPLER_ENGINE_FRACTION": "0.6",
        "GPUCI_REPORT_DIR": f"/tmp/gpuci-plugin-{guard}",
    }
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "harness.pytest_plugin",
        "-p",
        "no:cacheprovider",
        guard,
        "--gpuci-vram-backend",
        "nvml",
        "-v",
        "tests/areas/sampler/test_sampler.py",
        "-k",
        "first_engine or second_engine",
    ]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    records = Path(env["GPUCI_REPORT_DIR"]) / "pytest-records.json"
    result = {
        "guard": guard,
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - started, 2),
        "records": json.loads(records.read_text()) if records.exists() else [],
        "summary": [
            line
            for line in done.stdout.splitlines()
            if "PASSED" in line
            or "FAILED" in line
            or "ERROR" in line
            or "OutOfMemory" in line
            or "out of memory" in line
        ][:12],
    }
    print(json.dumps(result, indent=1), flush=True)
    return result


def area_run() -> dict:
    report_dir = Path("/tmp/gpuci-area-cuda")
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--platform",
        "cuda",
        "--area",
        "sampler",
        "--no-container",
        "--report-dir",
        str(report_dir),
    ]
    started = time.monotonic()
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=400,
    )
    print(done.stdout[-3000:], done.stderr[-2000:], flush=True)
    report = json.loads((report_dir / "report.json").read_text())
    return {"exit_code": done.returncode, "seconds": round(time.monotonic() - started, 2), "report": report}


def main() -> None:
    out = Path(sys.argv[1])
    results = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gpu": subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        ).stdout.strip(),
        "release_lag_s": float(LAG),
        "with_guard": pytest_run("--gpuci-vram-guard"),
        "without_guard": pytest_run("--gpuci-no-vram-guard"),
        "sampler_area_cuda_host_mode": area_run(),
    }
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
