"""Soak: many consecutive runs through the real engine and in host mode, faults at random moments.

Each run draws a workload (clean pass, failing test, ignores SIGTERM, setsid escapee, double fork,
zombies, log flood, delayed release, many children) and a fault: none, a cancel while the image is
checked, while the container starts, during the tests, a second cancel during the teardown itself,
a SIGKILL of the supervisor followed by `reap --yes`, a crash handoff (the supervisor SIGKILLed at a
random moment and, at once, with no reap, a next run on the same GPUs that needs 6 of their 8 GiB:
it must pass), or an orphan (the supervisor SIGKILLed and nothing else run: its container must stop
itself within its grace and a few seconds). After each: nothing of that run left (processes,
containers, lease files, simulated VRAM), a valid report (none is expected only after a SIGKILL), an
exit code that matches the report and what happened, no hang.

    python bench/soak.py [--runs 100] [--seed 1] [--out bench/results/soak.json]

Exits 1 if any run leaked, lost its report, hung, exited with a wrong code, failed falsely, or left an
orphan alive past its bound.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.gpu.lease import lease_files  # noqa: E402
from harness.gpu.vram import sim  # noqa: E402

# workload -> (command, what it does when nothing interrupts it: exit code and outcome)
WORKLOADS: dict[str, tuple[str, tuple[int, str]]] = {
    "pass": ("python3 misbehave.py instant", (0, "passed")),
    "fail": ("python3 -c 'import sys; sys.exit(3)'", (1, "failed")),
    "ignore-sigterm": ("python3 misbehave.py ignore-sigterm", (1, "timeout")),
    "setsid-escapee": ("python3 misbehave.py setsid-escapee", (0, "passed")),
    "double-fork-daemon": ("python3 misbehave.py double-fork-daemon", (0, "passed")),
    "zombies": ("python3 misbehave.py zombies", (0, "passed")),
    "flood": ("python3 misbehave.py flood", (0, "passed")),
    "release-lag": ("python3 misbehave.py release-lag", (0, "passed")),
    "many-children": ("python3 misbehave.py many-children", (0, "passed")),
}
FAULTS = ["none", "none", "image-check", "container-start", "tests", "teardown", "sigkill", "crash-handoff", "orphan"]
# The run after a crash: it fits only once the crashed run's memory is back (6 of 8 GiB).
FOLLOW_UP = "python3 misbehave.py big"
# An orphaned container stops within its grace (--grace 1) and the engine's own delays.
ORPHAN_BOUND_S = 1 + 4.0
CODES = {"passed": 0, "failed": 1, "timeout": 1, "cancelled": 1, "teardown_failed": 3, "infrastructure": 75}
HANG_S = 120
# The area's name is this process's own: a soak beside this one (a twin suite on the same engine) has
# its own containers and run ids, and neither counts or removes the other's.
AREA = f"soak-{os.getpid()}"
SESSION = f"cpu_{AREA}"


def make_project(directory: Path) -> Path:
    root = directory / "project"
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    steps = "".join(
        f'  - label: {name}\n    optional: true\n    commands: ["{command}"]\n'
        for name, (command, _) in [*WORKLOADS.items(), ("follow-up", (FOLLOW_UP, (0, "passed")))]
    )
    (root / ".buildkite" / "test_areas" / f"{AREA}.yaml").write_text(f"group: soak\nplatforms: [cpu]\nsteps:\n{steps}")
    shutil.copytree(ROOT / "containers", root / "containers")
    shutil.copytree(ROOT / "harness", root / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "tests" / "fixtures" / "misbehave.py", root / "misbehave.py")
    return root


def leftovers(sims: Path) -> list[int]:
    """Live processes of any run of this soak (runs are one at a time: after one, none may remain),
    found by the simulated GPUs' folder every run's processes carry in their environment."""
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.environ().get(sim.ENV) == str(sims):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def leases(sims: Path) -> list[str]:
    ids = [d.id for d in sim.SimBackend(sims).devices()]
    return [path.name for path in lease_files() if any(i in path.name for i in ids)]


def containers(client: Any) -> list[str]:
    """The soak's step containers and its runs' package listings, none of which may outlive a run
    (other work on the same engine, such as a test suite beside it, is not the soak's to judge)."""
    found = [c.id for c in client.containers.list(all=True, sparse=True, filters={"label": f"gpuci.area={AREA}"})]
    for c in client.containers.list(all=True, sparse=True, filters={"label": "gpuci.purpose=package-list"}):
        if f"-{SESSION}-" in (c.attrs.get("Labels") or {}).get("gpuci.run-id", ""):  # run ids name their session
            found.append(c.id)
    return found


def wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def one_run(index: int, rng: random.Random, root: Path, sims: Path, client: Any, env: dict[str, str]) -> dict[str, Any]:
    workload = rng.choice(list(WORKLOADS))
    where = rng.choice(["container", "host"])
    fault = rng.choice(FAULTS)
    if fault == "orphan" and where == "host":
        fault = "crash-handoff"  # a host process has no container to stop itself: handed off instead
    report_dir = root / ".gpuci" / "soak" / f"run-{index:04d}"
    args = [sys.executable, "-m", "harness", "run", "--platform", "cpu", "--area", AREA, "--step", workload]
    args += ["--root", str(root), "--report-dir", str(report_dir), "--grace", "1", "--quiet"]
    args += ["--timeout", "3" if workload == "ignore-sigterm" else "60"]
    if where == "host":
        args.append("--no-container")
    started = time.monotonic()
    proc = subprocess.Popen(
        args, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, text=True
    )
    holding = lambda: sim.SimBackend(sims).used_bytes(sim.SimBackend(sims).devices()[0]) > 0  # noqa: E731
    if fault == "image-check":
        time.sleep(rng.uniform(0.05, 0.4))
    elif fault == "container-start":
        time.sleep(rng.uniform(0.4, 1.2))
    elif fault in ("tests", "teardown", "sigkill", "orphan"):
        wait_for(lambda: holding() or proc.poll() is not None, 20)
        time.sleep(rng.uniform(0.0, 0.3))
    elif fault == "crash-handoff":  # any moment: the image check, the start, the tests
        time.sleep(rng.uniform(0.1, 2.0))
    if fault in ("sigkill", "crash-handoff", "orphan"):
        with _quiet():
            os.kill(proc.pid, signal.SIGKILL)  # the supervisor alone, as the OOM killer would
    elif fault != "none":
        with _quiet():
            os.killpg(proc.pid, signal.SIGTERM)  # the agent's cancel: the whole process group
        if fault == "teardown":
            time.sleep(rng.uniform(0.05, 0.5))
            with _quiet():
                os.killpg(proc.pid, signal.SIGTERM)  # again, while gpuci tears down
    hung = False
    try:
        _, err = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        hung = True
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    seconds = time.monotonic() - started
    report_path = report_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    run_id = report["run_id"] if report else None  # a SIGKILLed run writes none
    follow_up = None
    orphan_alive_s = None
    if fault == "crash-handoff":
        follow_up = _follow_up(index, root, env, where)
    if fault == "orphan":
        gone = wait_for(lambda: not _running(client), 30)
        orphan_alive_s = round(time.monotonic() - started - seconds, 3) if gone else None
    reaped = None
    reap_said = ""
    if fault in ("sigkill", "orphan"):
        reap = subprocess.run(
            [sys.executable, "-m", "harness", "reap", "--yes", "--vram-backend", "sim"],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        reaped = reap.returncode
        reap_said = (reap.stdout + reap.stderr)[-800:] if reap.returncode else ""
    # Caps, not bounds: a loaded machine (the soak in the test suite beside another suite) may take
    # seconds to let a signalled process go; only what stays past the cap is a leak.
    wait_for(lambda: not leftovers(sims), 60)  # processes a kill just signalled are leaving
    # Memory a killed holder frees late (the lag ROCm shows) is not a leak unless it stays held.
    vram_wait_started = time.monotonic()
    wait_for(lambda: not holding(), 60)
    vram_wait = time.monotonic() - vram_wait_started
    left = {
        "processes": leftovers(sims),
        "containers": containers(client),
        "leases": leases(sims),
        "vram_bytes": sim.SimBackend(sims).used_bytes(sim.SimBackend(sims).devices()[0]),
        "vram_free_after_s": round(vram_wait, 3),
    }
    expected_code, expected_outcome = WORKLOADS[workload][1]
    outcome = report.get("outcome") if report else None
    problems = []
    if hung:
        problems.append("hang")
    if any(left[k] for k in ("processes", "containers", "leases")) or left["vram_bytes"]:
        problems.append("leak")
        _clean_up(left, client)  # so the next run starts clean and is judged on its own
    if fault == "orphan" and (orphan_alive_s is None or orphan_alive_s > ORPHAN_BOUND_S):
        problems.append("orphan-alive")
    if follow_up is not None and (follow_up["exit_code"], follow_up["outcome"]) != (0, "passed"):
        problems.append("false-failure")
    began = report_dir.exists()  # a cancel in the interpreter's first milliseconds precedes the run itself
    if fault == "crash-handoff":
        pass  # judged by its follow-up run, above
    elif fault not in ("sigkill", "orphan") and (began or report is not None):
        if report is None:
            problems.append("missing-report")
        elif proc.returncode != report.get("gpuci_exit_code") or proc.returncode != CODES.get(str(outcome)):
            problems.append("wrong-code")
        elif fault == "none" and (proc.returncode, outcome) != (expected_code, expected_outcome):
            problems.append("false-failure" if proc.returncode else "wrong-code")
        elif fault != "none" and outcome not in ("cancelled", expected_outcome):
            problems.append("wrong-code")
    elif fault in ("sigkill", "orphan") and reaped != 0:  # a cancel before the run began has nothing to judge
        problems.append("reap-failed")
    return {
        "index": index,
        "run_id": run_id,
        **({"reap_said": reap_said} if reap_said else {}),
        "workload": workload,
        "where": where,
        "fault": fault,
        "exit_code": proc.returncode,
        "outcome": outcome,
        "began": began,
        "seconds": round(seconds, 3),
        "left": left,
        **({"follow_up": follow_up} if follow_up else {}),
        **({"orphan_alive_s": orphan_alive_s} if fault == "orphan" else {}),
        "problems": problems,
        "stderr_tail": err[-300:] if problems else "",
    }


def _follow_up(index: int, root: Path, env: dict[str, str], where: str) -> dict[str, Any]:
    """The next job on the same GPUs, started the moment the last one's supervisor died."""
    report_dir = root / ".gpuci" / "soak" / f"run-{index:04d}-next"
    args = [sys.executable, "-m", "harness", "run", "--platform", "cpu", "--area", AREA, "--step", "follow-up"]
    args += ["--root", str(root), "--report-dir", str(report_dir), "--grace", "1", "--quiet", "--timeout", "60"]
    if where == "host":
        args.append("--no-container")
    started = time.monotonic()
    done = subprocess.run(args, env=env, cwd=root, capture_output=True, text=True, timeout=HANG_S)
    path = report_dir / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    return {
        "exit_code": done.returncode,
        "outcome": report.get("outcome"),
        "seconds": round(time.monotonic() - started, 3),
        **({"stderr_tail": done.stderr[-600:]} if done.returncode else {}),
    }


def _running(client: Any) -> list[str]:
    return [c.id for c in client.containers.list(sparse=True, filters={"label": f"gpuci.area={AREA}"})]


def _clean_up(left: dict[str, Any], client: Any) -> None:
    for pid in left["processes"]:
        with _quiet():
            os.kill(pid, signal.SIGKILL)
    for name in left["containers"]:
        with _quiet():
            client.api.remove_container(name, force=True)


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *_: object) -> bool:
        import docker.errors

        return kind is not None and issubclass(kind, (ProcessLookupError, docker.errors.APIError))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args(argv)
    import docker

    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    client = docker.from_env()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="gpuci-soak-") as scratch:
        root = make_project(Path(scratch))
        sims = Path(scratch) / "simgpu"
        sim.init(sims, count=2, total_bytes=8 * 1024**3)
        # Its own lock folder: the lease files its `reap --yes` clears are its own runs', never the
        # records a neighbour's crashed run left for that neighbour's next run to hand over.
        os.environ["GPUCI_LOCK_DIR"] = str(Path(scratch) / "locks")
        Path(os.environ["GPUCI_LOCK_DIR"]).mkdir()
        env = {**os.environ, "PYTHONPATH": str(root), sim.ENV: str(sims)}
        ensure(client, recipe_for(root, "cpu"), root)  # built once, not inside a run's fault window
        rows = []
        for index in range(args.runs):
            row = one_run(index, rng, root, sims, client, env)
            rows.append(row)
            mark = ", ".join(row["problems"]) or "ok"
            print(
                f"[{index + 1}/{args.runs}] {row['workload']:18} {row['where']:9} {row['fault']:15} "
                f"exit {row['exit_code']!s:>3} {row['outcome']!s:10} {row['seconds']:6.2f}s  {mark}",
                flush=True,
            )
            if row.get("reap_said"):
                print(f"    reap said: {row['reap_said'].strip()}", flush=True)
    counts = {kind: sum(kind in r["problems"] for r in rows) for kind in PROBLEMS}
    summary = {
        "runs": len(rows),
        "seed": args.seed,
        "by_fault": {f: sum(r["fault"] == f for r in rows) for f in dict.fromkeys(FAULTS)},
        "by_where": {w: sum(r["where"] == w for r in rows) for w in ("container", "host")},
        **counts,
        "crash_handoffs": sum(r["fault"] == "crash-handoff" for r in rows),
        "orphans": sum(r["fault"] == "orphan" for r in rows),
        "orphan_alive_s_max": max((r.get("orphan_alive_s") or 0 for r in rows), default=None),
        "median_run_s": sorted(r["seconds"] for r in rows)[len(rows) // 2] if rows else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "runs": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=2))
    return 1 if any(counts.values()) else 0


PROBLEMS = ("leak", "missing-report", "hang", "wrong-code", "false-failure", "reap-failed", "orphan-alive")

if __name__ == "__main__":
    raise SystemExit(main())
