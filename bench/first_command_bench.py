"""The first command as a user runs it: `nox -l` and a warm `nox -s cpu_<area>` in a project `gpuci init`
made, against the step itself (the same command in the same image, `docker run --rm`), with nox's
virtualenv and uv backends alike (`--default-venv-backend B`, as a user sets it, and `--force-venv-backend
B`, which makes nox create an environment even for gpuci's sessions).

Run it with the Python where gpuci is installed (`pip install dist/gpuci_harness-*.whl` or the checkout;
uv installed beside it for the uv backend): `python bench/first_command_bench.py`. gpuci's modules are
compiled first and PYTHONDONTWRITEBYTECODE is dropped, as after a `pip install`: else every call compiles
gpuci's modules again (about 0.05 s of CPU a call).

Built for a shared, loaded machine: each warm run is paired with a `docker run --rm` of the same pytest
right after it, so the neighbours' load falls on both alike, and every pair is kept: wall and CPU seconds
(user + system of the process and its children: what the overhead costs whatever the neighbours do) of
both, their difference (the overhead), and the load average when the pair started. The acceptance
figure is the overhead of gpuci over `docker run --rm`: its min and median over the pairs, wall and CPU.
Writes bench/results/first-command.json, with plain nox's own `nox -l` on a one-session noxfile (what
nox costs here before gpuci adds anything) and where a warm run's time goes (the report's timings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEST = "def test_one():\n    assert 1 + 1 == 2\n"


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the CPU seconds (user + system) of the command and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3)}


def medians(samples: list[tuple[float, float]]) -> dict[str, Any]:
    return {
        "wall_s": round(statistics.median(s[0] for s in samples), 3),
        "cpu_s": round(statistics.median(s[1] for s in samples), 3),
        "wall_min_s": round(min(s[0] for s in samples), 3),
        "cpu_min_s": round(min(s[1] for s in samples), 3),
        "samples_wall_s": [round(s[0], 3) for s in samples],
        "samples_cpu_s": [round(s[1], 3) for s in samples],
    }


def project(where: Path, env: dict[str, str]) -> Path:
    repo = where / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([sys.executable, "-m", "harness", "init", "--root", str(repo)], check=True, env=env,
                   capture_output=True)  # fmt: skip
    (repo / "tests").mkdir()
    (repo / "tests" / "test_one.py").write_text(TEST)
    ident = ["-c", "user.email=bench@example.com", "-c", "user.name=bench"]
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), *ident, "commit", "-qm", "init"], check=True)
    return repo


PLAIN_NOXFILE = 'import nox\n\n\n@nox.session(venv_backend="none")\ndef cpu_example(session):\n    pass\n'
BACKENDS = ("virtualenv", "uv")


def bench_backend(repo: Path, env: dict[str, str], nox: list[str], flags: list[str], repeats: int) -> dict[str, Any]:
    """`nox -l` and warm runs under one backend setting, each run paired with the step itself."""
    listed = medians([timed([*nox, *flags, "-l"], repo, env) for _ in range(repeats)])
    timed([*nox, *flags, "-s", "cpu_example"], repo, env)  # a first run: the image exists; any venv is made
    report = json.loads((repo / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    bare = [
        "docker", "run", "--rm", "--init", "-v", f"{repo}:/workspace", "-w", "/workspace", report["image"]["tag"],
        "pytest", "-q", "-p", "no:cacheprovider",
    ]  # fmt: skip
    pairs, timings = [], []
    for _ in range(repeats):  # paired: the neighbours' load falls on both alike
        load = os.getloadavg()[0]
        gpuci_wall, gpuci_cpu = timed([*nox, *flags, "-s", "cpu_example"], repo, env)
        report = json.loads((repo / ".gpuci" / "runs" / "latest" / "report.json").read_text())
        timings.append(report["timings"])
        step_wall, step_cpu = timed(bare, repo, env)
        pairs.append(
            {
                "load_1min": round(load, 2),
                "gpuci_wall_s": round(gpuci_wall, 3),
                "gpuci_cpu_s": round(gpuci_cpu, 3),
                "docker_run_wall_s": round(step_wall, 3),
                "docker_run_cpu_s": round(step_cpu, 3),
                "overhead_wall_s": round(gpuci_wall - step_wall, 3),
                "overhead_cpu_s": round(gpuci_cpu - step_cpu, 3),
            }
        )
    where = {key: round(statistics.median(t.get(key, 0.0) for t in timings), 3) for key in timings[0]}
    overhead_wall = spread([p["overhead_wall_s"] for p in pairs])
    return {
        "flags": flags,
        "nox_list": listed,
        "pairs": pairs,
        "warm_run_wall_s": spread([p["gpuci_wall_s"] for p in pairs]),
        "warm_run_cpu_s": spread([p["gpuci_cpu_s"] for p in pairs]),
        "step_itself_docker_run_wall_s": spread([p["docker_run_wall_s"] for p in pairs]),
        "warm_overhead_wall_s": overhead_wall,
        "warm_overhead_cpu_s": spread([p["overhead_cpu_s"] for p in pairs]),
        "load_1min": spread([p["load_1min"] for p in pairs]),
        "gpuci_report_timings_median_s": where,
        "nox_list_under_1s": listed["wall_s"] < 1.0,
        "warm_overhead_under_1s": overhead_wall["median"] < 1.0,
    }


def compiled(env: dict[str, str]) -> Path:
    """gpuci's modules compiled where it is installed, as `pip install` leaves them; its folder."""
    found = subprocess.run(
        [sys.executable, "-I", "-c", "import harness, os; print(os.path.dirname(harness.__file__))"],
        env=env, cwd="/", capture_output=True, text=True, check=True,
    )  # fmt: skip
    package = Path(found.stdout.strip())
    subprocess.run([sys.executable, "-I", "-m", "compileall", "-q", str(package)], env=env, cwd="/", check=True)
    return package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("GPUCI_BENCH_REPEATS", "5")))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "first-command.json")
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    if not (bindir / "gpuci").exists():
        raise SystemExit(f"run this with the Python where gpuci is installed; {sys.executable} has no `gpuci`.")
    if not shutil.which("uv", path=f"{bindir}:{os.environ.get('PATH', '')}"):
        raise SystemExit("nox's uv backend needs uv: `pip install uv` beside gpuci, then run this again.")
    dropped = ("PYTHONPATH", "CI", "BUILDKITE", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}"
    nox = [sys.executable, "-m", "nox"]
    where = Path(tempfile.mkdtemp(prefix="gpuci-first-"))
    load_before = os.getloadavg()
    package = compiled(env)
    try:
        repo = project(where, env)
        (where / "plain").mkdir()
        (where / "plain" / "noxfile.py").write_text(PLAIN_NOXFILE)
        plain = medians([timed([*nox, "-l"], where / "plain", env) for _ in range(args.repeats)])
        own = medians([timed([*nox, "-l"], ROOT, env) for _ in range(args.repeats)])
        timed([*nox, "-s", "cpu_example"], repo, env)  # cold: builds the project's image once
        backends = {}
        for backend in BACKENDS:
            for how in ("default", "force"):
                flags = [f"--{how}-venv-backend", backend]
                backends[f"{how}:{backend}"] = bench_backend(repo, env, nox, flags, args.repeats)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    result = {
        "what": "nox -l and a warm `nox -s cpu_example` in a project `gpuci init` made (gpuci installed, nox "
        "beside it), each warm run paired with the same pytest in the same image by `docker run --rm`, per nox "
        "backend setting; overhead = gpuci's run minus the docker run of its pair, wall and CPU (user + system)",
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "gpuci_package": str(package),
        "bytecode_compiled": True,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "repeats": args.repeats,
        "plain_nox_list_one_session": plain,
        "nox_list_gpuci_checkout": own,
        "backends": backends,
        "warm_overhead_wall_s": spread([p["overhead_wall_s"] for b in backends.values() for p in b["pairs"]]),
        "warm_overhead_cpu_s": spread([p["overhead_cpu_s"] for b in backends.values() for p in b["pairs"]]),
        "nox_list_under_1s": all(b["nox_list_under_1s"] for b in backends.values()),
        "warm_overhead_under_1s": all(b["warm_overhead_under_1s"] for b in backends.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
