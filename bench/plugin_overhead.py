"""What gpuci's in-container pytest plugin costs per test: bench/results/plugin-overhead.json.

pytest runs a generated suite of N trivial tests on the host, once as a bare `pytest` and once with
the plugin loaded as a run loads it in the image (`-p harness.pytest_plugin`, with an outbox, a run
id and a step timeout, so the per-test results, running file and stacks deadline are all live).
Each figure is the median of the repeats; CPU is the pytest process's user + system time.

    python bench/plugin_overhead.py [--tests 20000] [--repeats 3] [--label after]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "plugin-overhead.json"
PER_MODULE = 1000  # tests per generated module: collection stays a small part of the figure
STEP_TIMEOUT_S = 3600  # a live stacks deadline, far enough away never to fire


def write_suite(folder: Path, count: int) -> None:
    for start in range(0, count, PER_MODULE):
        body = "".join(f"def test_{i}():\n    pass\n\n" for i in range(start, min(start + PER_MODULE, count)))
        (folder / f"test_gen_{start // PER_MODULE}.py").write_text(body)


def plugin_env(outbox: Path) -> dict[str, str]:
    """The plugin's environment in a cpu step's container (harness.run.plan.container_env)."""
    return {
        "PYTHONPATH": str(ROOT),
        "GPUCI_RUN_ID": "bench",
        "GPUCI_PLATFORM": "cpu",
        "GPUCI_REPORT_DIR": str(outbox),
        "GPUCI_IN_CONTAINER": "1",
        "GPUCI_VRAM_GUARD": "0",  # a step without GPUs: nothing to guard on this host
        "GPUCI_STEP_TIMEOUT_S": str(STEP_TIMEOUT_S),
        "GPUCI_STEP_DEADLINE": f"{time.time() + STEP_TIMEOUT_S:.3f}",
    }


def run_once(suite: Path, with_plugin: bool) -> tuple[float, float]:
    """CPU and wall seconds of one pytest run over the suite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUCI_", "PYTEST_"))}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(suite)]
    with tempfile.TemporaryDirectory(prefix="gpuci-outbox-") as outbox:
        if with_plugin:
            env.update(plugin_env(Path(outbox)))
            args[3:3] = ["-p", "harness.pytest_plugin"]
        else:  # installed here, the plugin's entry point would load it into the bare run too
            args[3:3] = ["-p", "no:harness.pytest_plugin"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(args, cwd=suite, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"pytest failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        if with_plugin and not any(Path(outbox).glob("tests-*.jsonl")):
            raise SystemExit("the plugin wrote no results: it was not loaded as in a run")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(count: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gpuci-plugin-bench-") as folder:
        suite = Path(folder)
        write_suite(suite, count)
        samples: dict[str, list[tuple[float, float]]] = {"bare": [], "plugin": []}
        for _ in range(repeats):  # interleaved, so a change in the host's load hits both alike
            samples["bare"].append(run_once(suite, with_plugin=False))
            samples["plugin"].append(run_once(suite, with_plugin=True))
    figures: dict[str, Any] = {}
    for name, runs in samples.items():
        figures[name] = {
            "cpu_s": round(statistics.median(c for c, _ in runs), 3),
            "wall_s": round(statistics.median(w for _, w in runs), 3),
            "cpu_samples_s": [round(c, 3) for c, _ in runs],
            "wall_samples_s": [round(w, 3) for _, w in runs],
        }
    extra_cpu = figures["plugin"]["cpu_s"] - figures["bare"]["cpu_s"]
    extra_wall = figures["plugin"]["wall_s"] - figures["bare"]["wall_s"]
    figures["plugin_cpu_us_per_test"] = round(extra_cpu / count * 1e6, 1)
    figures["plugin_wall_us_per_test"] = round(extra_wall / count * 1e6, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="current", help="the key the figures are kept under (before, after)")
    options = parser.parse_args()
    figures = measure(options.tests, options.repeats)
    figures.update(tests=options.tests, repeats=options.repeats, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    figures["host"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    kept[options.label] = figures
    RESULTS.write_text(json.dumps(kept, indent=1) + "\n")
    print(json.dumps({options.label: figures}, indent=1))


if __name__ == "__main__":
    main()
