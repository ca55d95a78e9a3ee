"""Speed figures on a machine with Docker and no GPU: `nox -s bench` writes bench/results/cpu.json.

Each figure is a median of repeated runs, set against its baseline measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.declare.stop_policy import StopPolicy  # noqa: E402
from harness.gpu.vram import sim  # noqa: E402
from harness.gpu.vram.release import VramWatch  # noqa: E402
from harness.images.build import ensure  # noqa: E402
from harness.images.engine import connect  # noqa: E402
from harness.images.recipe import recipe_for  # noqa: E402
from harness.redact import Redactor  # noqa: E402
from harness.run.host.process import HostWorkload  # noqa: E402
from harness.run.logs import LogTarget  # noqa: E402
from harness.run.supervise.supervisor import supervise  # noqa: E402
from harness.teardown.process_tree import Baseline, shutdown_many  # noqa: E402

REPEATS = int(os.environ.get("GPUCI_BENCH_REPEATS", "7"))


def median_seconds(fn: Callable[[], Any], repeats: int = REPEATS) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run_overhead(tag: str, env: dict[str, str]) -> dict[str, Any]:
    """`python -m harness run` on a warm image against a bare `docker run --rm` of the same command."""
    area_root = Path(tempfile.mkdtemp(prefix="gpuci-bench-"))
    (area_root / ".buildkite" / "test_areas").mkdir(parents=True)
    (area_root / ".buildkite" / "test_areas" / "bench.yaml").write_text(
        "platforms: [cpu]\nsteps:\n  - label: noop\n    commands: ['python3 -c pass']\n"
    )
    (area_root / "containers").symlink_to(ROOT / "containers")

    def harness_run() -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "run",
                "--platform",
                "cpu",
                "--area",
                "bench",
                "--root",
                str(area_root),
                "--quiet",
            ],
            check=True,
            env=env,
            capture_output=True,
        )

    def bare() -> None:
        subprocess.run(
            ["docker", "run", "--rm", "--init", tag, "bash", "-ec", "python3 -c pass"],
            check=True,
            capture_output=True,
        )

    harness_run()  # warm: the first run creates the simulated GPUs and the runs folder
    gpuci = median_seconds(harness_run)
    docker = median_seconds(bare)
    return {
        "gpuci_run_s": round(gpuci, 4),
        "bare_docker_run_s": round(docker, 4),
        "overhead_s": round(gpuci - docker, 4),
        "goal_overhead_s": 0.3,
    }


def nox_session_overhead(tag: str, env: dict[str, str], directory: Path) -> dict[str, Any]:
    """`nox -s cpu_sampler`, whole, against a bare `docker run` of the area's own command (the tests
    with no deliberate release lag, so both sides do the same work)."""
    uid = f"{os.getuid()}:{os.getgid()}"

    def session() -> None:
        subprocess.run(
            [sys.executable, "-m", "nox", "-s", "cpu_sampler", "--", "-k", "topk or greedy"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )

    def bare() -> None:
        subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--init",
                "-u",
                uid,
                "-v",
                f"{ROOT}:/workspace",
                "-w",
                "/workspace",
                "-v",
                f"{directory}:/gpuci/simgpu",
                "-e",
                "GPUCI_SIM_GPUS=/gpuci/simgpu",
                "-e",
                "PYTHONPATH=/workspace",
                "-e",
                "HOME=/tmp",
                "-e",
                "GPUCI_PLATFORM=cpu",
                "-e",
                "GPUCI_IN_CONTAINER=1",
                tag,
                "bash",
                "-ec",
                "pytest -q -p no:cacheprovider -p harness.pytest_plugin tests/areas/sampler -k 'topk or greedy'",
            ],
            check=True,
            capture_output=True,
        )

    session()
    nox_s = median_seconds(session, repeats=5)
    docker_s = median_seconds(bare, repeats=5)
    return {
        "nox_session_s": round(nox_s, 4),
        "bare_docker_run_s": round(docker_s, 4),
        "overhead_s": round(nox_s - docker_s, 4),
        "goal_overhead_s": 1.0,
    }


def noop_ensure() -> dict[str, Any]:
    client = connect()
    recipe = recipe_for(ROOT, "cpu")
    ensure(client, recipe, ROOT)
    builds = 0
    samples = []
    for _ in range(REPEATS):
        result = ensure(client, recipe, ROOT)
        builds += result.built
        samples.append(result.seconds)
    return {"median_s": round(statistics.median(samples), 5), "build_calls": builds, "goal_s": 0.2}


def teardown_overhead(directory: Path, runs: int = 21) -> dict[str, Any]:
    backend = sim.SimBackend(directory)
    device = backend.devices()[0]
    after_exit = []
    with tempfile.TemporaryDirectory() as logs:
        for i in range(runs):
            workload = HostWorkload(
                ["true"], dict(os.environ), ROOT, LogTarget(Path(logs) / f"{i}.log", Redactor(), echo=False)
            )
            result = supervise(workload, timeout_s=30, budget_s=2.1, vram=VramWatch(backend, [device], timeout_s=10))
            after_exit.append(result.timings["remove_s"] + result.timings["vram_back_s"])
    return {"median_ms": round(statistics.median(after_exit) * 1e3, 3), "goal_ms": 10, "runs": runs}


def release_noticed(directory: Path, runs: int = 11) -> dict[str, Any]:
    """Simulated device: the time from a holder's death to the wait seeing its memory gone."""
    backend = sim.SimBackend(directory)
    device = backend.devices()[0]
    samples = []
    for _ in range(runs):
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "simgpu", "hold", "1GiB"],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            text=True,
        )
        proc.stdout.readline()  # type: ignore[union-attr]
        fd = os.pidfd_open(proc.pid)
        proc.kill()
        select.select([fd], [], [])
        died = time.perf_counter()
        os.close(fd)
        while backend.used_bytes(device):
            pass
        samples.append(time.perf_counter() - died)
        proc.wait()
    return {"median_ms": round(statistics.median(samples) * 1e3, 3), "runs": runs}


def shutdown_many_ratio(directory: Path, n: int = 8, delay: float = 0.5) -> dict[str, Any]:
    backend = sim.SimBackend(directory)
    device = backend.devices()[0]
    server = (
        "import os,signal,sys,time\nfrom harness.gpu.vram import sim\nh=sim.hold(1<<28,0)\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (time.sleep({delay}), os._exit(0)))\n"
        "print('ready',flush=True)\ntime.sleep(60)\n"
    )

    def measure(count: int) -> float:
        baseline = Baseline(time.time(), {device.id: backend.used_bytes(device)})
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", server],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for _ in range(count)
        ]
        for p in procs:
            p.stdout.readline()  # type: ignore[union-attr]
        started = time.perf_counter()
        shutdown_many([p.pid for p in procs], StopPolicy(grace_s=5), [baseline], backend, [device])
        took = time.perf_counter() - started
        for p in procs:
            p.wait()
        return took

    one = statistics.median(measure(1) for _ in range(3))
    many = statistics.median(measure(n) for _ in range(3))
    return {
        "servers": n,
        "shutdown_delay_s": delay,
        "one_s": round(one, 4),
        "many_s": round(many, 4),
        "ratio": round(many / one, 3),
        "goal_ratio": 1.2,
    }


def pipeline_generation() -> dict[str, Any]:
    """`python -m harness pipeline --all` for a synthetic project of 500 steps with AMD mirrors."""
    sys.path.insert(0, str(ROOT))
    from tests.synthetic import synthetic_project

    with tempfile.TemporaryDirectory(prefix="gpuci-bench-pipeline-") as tmp:
        root = synthetic_project(Path(tmp))
        cmd = [sys.executable, "-m", "harness", "pipeline", "--all", "--root", str(root)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        seconds = median_seconds(lambda: subprocess.run(cmd, env=env, check=True, capture_output=True), repeats=5)
    return {"steps": 500, "median_s": round(seconds, 4), "goal_s": 1.0}


def lint_10k_files() -> dict[str, Any]:
    """`python -m harness lint` over a tree of 10,000 test files reached by 200 steps."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="gpuci-bench-lint-") as tmp:
        root = Path(tmp)
        for area in range(200):
            folder = root / "tests" / f"area{area}"
            folder.mkdir(parents=True)
            for i in range(50):
                (folder / f"test_{i}.py").write_text("def test_x():\n    pass\n")
        (root / ".buildkite" / "test_areas").mkdir(parents=True)
        for group in range(10):
            steps = [
                {
                    "label": f"area {a}",
                    "commands": [
                        f"cd tests && pytest -v area{a} --ignore=area{a}/test_49.py",
                        f"pytest area{a}/test_49.py",
                    ],
                    "source_file_dependencies": [f"tests/area{a}"],
                }
                for a in range(group * 20, group * 20 + 20)
            ]
            (root / ".buildkite" / "test_areas" / f"g{group}.yaml").write_text(yaml.safe_dump({"steps": steps}))
        cmd = [sys.executable, "-m", "harness", "lint", "--root", str(root)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        seconds = median_seconds(lambda: subprocess.run(cmd, env=env, check=True, capture_output=True), repeats=3)
    return {"test_files": 10000, "steps": 200, "median_s": round(seconds, 3), "goal_s": 5.0}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "results" / "cpu.json"
    with tempfile.TemporaryDirectory(prefix="gpuci-bench-sim-") as simdir:
        directory = Path(simdir)
        sim.init(directory, count=1, total_bytes=16 * 1024**3)
        env = {**os.environ, "PYTHONPATH": str(ROOT), sim.ENV: str(directory)}
        tag = ensure(connect(), recipe_for(ROOT, "cpu"), ROOT).tag
        results = {
            "machine": {
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "docker": connect().version().get("Version"),
            },
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "repeats": REPEATS,
            "noop_image_ensure": noop_ensure(),
            "run_overhead_vs_bare_docker_run": run_overhead(tag, env),
            "nox_cpu_sampler_overhead_vs_bare_docker_run": nox_session_overhead(tag, env, directory),
            "supervisor_teardown_overhead_host_mode": teardown_overhead(directory),
            "sim_release_noticed": release_noticed(directory),
            "shutdown_many_sim": shutdown_many_ratio(directory),
            "pipeline_generation_500_steps": pipeline_generation(),
            "lint_10k_test_files": lint_10k_files(),
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
