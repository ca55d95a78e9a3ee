"""Two GPUs through Docker, and a crash handoff with torch holding memory: gpuci's runs on real H200s.

Run from the repository root on the two-GPU machine (or here as a dry run: `--platform cpu
--engine existing`, simulated GPUs):

    python3 bench/gpu/docker_x2.py OUT_DIR [--carry .gpu-carry] [--platform cuda|cpu]
                                           [--engine carried|existing] [--host-venv DIR]

The engine, the base imported from the machine's root and gpuci's image are made as in
docker_h100.py (bench/gpu/rig.py). Then, each step a `python -m harness run` (what `nox -s cuda_gpu_x2 -- --step S`
runs), the workload bench/gpu/gpu_probe.py saying what torch sees:
1. crash handoff: a run holds --crash-gib on its GPU; its supervisor is SIGKILLed; at once, with
   nothing else run, the next run asks --next-gib of the same GPU (it fits only once the crashed
   run's memory is back). Recorded: the next run's exit code and outcome, what gpuci said, how long
   the handoff took, and whether anything of the crashed run was left.
2. a `num_gpus: 2` step: torch's device count and both UUIDs, against the run's lease.
3. two concurrent `num_gpus: 1` sessions: the UUID each saw, disjoint or not.
4. a `num_gpus: 2` step running `pytest -n 2 --gpuci-gpus-per-worker 1`: each worker's id, device
   count and UUID.
Writes OUT_DIR/docker-x2.json and each run's log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "gpu"))
sys.path.insert(0, str(ROOT))

from rig import add_arguments, build_image, gpuci_env, host_root_base, log, start  # noqa: E402

AREA = ROOT / ".buildkite" / "test_areas" / "gpu_x2.yaml"
WORKER_OUT = ROOT / ".x2-workers"
GIB = 1024**3


def write_area(args: argparse.Namespace) -> None:
    cpu = " --cpu" if args.platform == "cpu" else ""
    probe = f"python3 bench/gpu/gpu_probe.py{cpu}"
    workers = "python3 -m pytest -p no:cacheprovider -n 2 --gpuci-gpus-per-worker 1 -q bench/gpu/pinned_workers.py" + (
        " --gpuci-vram-backend sim" if args.platform == "cpu" else ""
    )
    steps = [
        ("crash", 1, f"{probe} --hold {args.crash_gib} --sleep 3600"),
        ("next", 1, f"{probe} --hold {args.next_gib}"),
        ("both", 2, probe),
        ("one", 1, f"{probe} --hold 2 --sleep 8"),
        ("workers", 2, workers),
    ]
    area = {
        "group": "gpu x2",
        "steps": [
            {"label": label, "commands": [command], "platforms": [args.platform], "num_gpus": gpus}
            for label, gpus, command in steps
        ],
    }
    AREA.write_text(json.dumps(area, indent=1))


def harness_run(args: argparse.Namespace, step: str, env: dict[str, str], report_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "harness", "run", "--platform", args.platform, "--area", "gpu_x2",
        "--step", step, "--report-dir", str(report_dir), "--grace", "2",
    ]  # fmt: skip


def probe_of(report_dir: Path) -> dict[str, Any] | None:
    try:
        lines = (report_dir / "output.log").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith('{"pid"'):
            return json.loads(line)
    return None


def report_of(report_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((report_dir / "report.json").read_text())
    except (OSError, ValueError):
        return {}


def used(backend: Any, index: int = 0) -> int:
    return backend.used_bytes(backend.devices()[index]) if backend else 0


def crash_handoff(args: argparse.Namespace, env: dict[str, str], backend: Any, client: Any) -> dict[str, Any]:
    crashed_dir, next_dir = args.out / "crash-report", args.out / "next-report"
    baseline = used(backend)
    with open(args.out / "crash.log", "w") as out:
        crashed = subprocess.Popen(harness_run(args, "crash", env, crashed_dir), cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        started = time.monotonic()
        target = baseline + int(args.crash_gib * GIB * 0.9)
        while backend and used(backend) < target and time.monotonic() - started < 180:
            time.sleep(0.05)
        if not backend:
            time.sleep(8)
        held_after = time.monotonic() - started
        said = (args.out / "crash.log").read_text()
        run_id = said.split("· run ", 1)[1].split()[0] if "· run " in said else None
        crashed.send_signal(signal.SIGKILL)  # the agent dies: no teardown, no report, no reap
        killed = time.monotonic()
        crashed.wait()
    used_at_kill = used(backend)
    next_started = time.monotonic()
    done = subprocess.run(harness_run(args, "next", env, next_dir), cwd=ROOT, env=env, capture_output=True, text=True)
    next_wall = time.monotonic() - next_started
    (args.out / "next.log").write_text(done.stdout + done.stderr)
    report = report_of(next_dir)
    left = [c.name for c in client.containers.list(all=True, filters={"label": "gpuci.area=gpu_x2"})]
    return {
        "crash_gib": args.crash_gib,
        "next_gib": args.next_gib,
        "gpu_total_bytes": backend.devices()[0].total_bytes if backend else None,
        "crashed_held_after_s": round(held_after, 3),
        "used_when_killed_bytes": used_at_kill,
        "crashed_run_id": run_id,
        "next_exit_code": done.returncode,
        "next_outcome": report.get("outcome"),
        "next_probe": probe_of(next_dir),
        "next_wall_s": round(next_wall, 3),
        "kill_to_next_done_s": round(time.monotonic() - killed, 3),
        "next_said": [
            line
            for line in done.stderr.splitlines()
            if "crashed" in line or "baseline" in line or "supervisor died" in line or "waiting" in line
        ],
        "next_lease": report.get("lease"),
        "next_timings": report.get("timings"),
        "containers_left_after": left,
        "used_after_bytes": used(backend),
    }


def two_gpu_step(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    report_dir = args.out / "both-report"
    done = subprocess.run(harness_run(args, "both", env, report_dir), cwd=ROOT, env=env, capture_output=True, text=True)
    (args.out / "both.log").write_text(done.stdout + done.stderr)
    report = report_of(report_dir)
    probe = probe_of(report_dir) or {}
    return {
        "exit_code": done.returncode,
        "outcome": report.get("outcome"),
        "lease": report.get("lease"),
        "devices": report.get("devices"),
        "torch_saw": probe,
        "sees_both": sorted(probe.get("uuids") or []) == sorted(report.get("lease") or [])
        if args.platform == "cuda"
        else None,
    }


def concurrent_sessions(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    dirs = [args.out / f"one-{i}-report" for i in range(2)]
    procs = [
        subprocess.Popen(
            harness_run(args, "one", env, d),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for d in dirs
    ]
    outputs = [p.communicate()[0] for p in procs]
    for i, text in enumerate(outputs):
        (args.out / f"one-{i}.log").write_text(text)
    runs = []
    for proc, directory in zip(procs, dirs, strict=True):
        report = report_of(directory)
        runs.append({"exit_code": proc.returncode, "outcome": report.get("outcome"), "lease": report.get("lease"),
                     "torch_saw": probe_of(directory)})  # fmt: skip
    leases = [tuple(r["lease"] or ()) for r in runs]
    return {"runs": runs, "disjoint": len(set(leases)) == 2 and all(len(x) == 1 for x in leases)}


def pinned_workers(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    WORKER_OUT.mkdir(exist_ok=True)
    for old in WORKER_OUT.glob("*.json"):
        old.unlink()
    report_dir = args.out / "workers-report"
    done = subprocess.run(harness_run(args, "workers", env, report_dir), cwd=ROOT, env=env, capture_output=True,
                          text=True)  # fmt: skip
    (args.out / "workers.log").write_text(done.stdout + done.stderr)
    report = report_of(report_dir)
    seen = [json.loads(p.read_text()) for p in sorted(WORKER_OUT.glob("*.json"))]
    key = "uuids" if args.platform == "cuda" else "GPUCI_SIM_VISIBLE_DEVICES"
    each = [str(s.get(key)) for s in seen]
    return {
        "exit_code": done.returncode,
        "outcome": report.get("outcome"),
        "lease": report.get("lease"),
        "workers": seen,
        "one_gpu_each_and_disjoint": len(seen) == 2
        and len(set(each)) == 2
        and all(s.get("device_count", 1) == 1 for s in seen),
        "run_s": (report.get("timings") or {}).get("run_s"),
    }


def save(out: Path, result: dict[str, Any]) -> None:
    (out / "docker-x2.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--crash-gib", type=float, default=80.0)
    parser.add_argument("--next-gib", type=float, default=100.0)
    parser.add_argument("--skip", nargs="*", default=[], help="parts to skip: handoff, both, concurrent, workers")
    args = parser.parse_args()
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "platform": args.platform}
    rig = start(args, result, ("ServerVersion", "Driver", "CgroupVersion"))
    client, backend, mounts = rig.client, rig.backend, rig.mounts
    if backend is not None:
        result["gpus"] = [{"index": d.index, "uuid": d.id, "name": d.name, "total_bytes": d.total_bytes}
                          for d in backend.devices()]  # fmt: skip
    try:
        base = None
        if args.platform == "cuda":
            log("importing the machine's root as the base")
            base, result["base"] = host_root_base(client, rig.venv)
        env = gpuci_env(base or "local", mounts)
        if args.platform == "cpu":
            env.pop("GPUCI_BASE_IMAGE")
        os.environ.update({k: v for k, v in env.items() if k.startswith("GPUCI_")})
        image, seconds = build_image(client, args.platform, base)
        result["image_build"] = {"tag": image.tag, "seconds": seconds}
        log(f"image {image.tag}")
        write_area(args)
        for name, part in (("handoff", lambda: crash_handoff(args, env, backend, client)),
                           ("both", lambda: two_gpu_step(args, env)),
                           ("concurrent", lambda: concurrent_sessions(args, env)),
                           ("workers", lambda: pinned_workers(args, env))):  # fmt: skip
            if name in args.skip:
                continue
            log(f"part {name}")
            result[name] = part()
            log(json.dumps(result[name], default=str)[:1500])
            save(args.out, result)
    finally:
        AREA.unlink(missing_ok=True)
        save(args.out, result)
        rig.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
