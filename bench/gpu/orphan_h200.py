"""The orphan guarantee against a hostile step, on a real GPU through a real Docker Engine.

    python3 bench/gpu/orphan_h200.py OUT_DIR [--carry .gpu-carry] [--platform cuda|cpu] [--gib 8]

A step holds GPU memory, kills the watcher gpuci starts in its container (every process but PID 1,
itself and its holder whose command line names it), then sleeps on. Its supervisor is SIGKILLed, as
an OOM kill or a lost agent would. Measured: how long the container runs on, when NVML shows the
memory free again, and whether anything of the run is left (containers, janitors). Engine, base and
image as in bench/gpu/docker_h100.py (bench/gpu/rig.py). `--platform cpu` is the dry run for a
machine without a GPU. Writes OUT_DIR/orphan.json.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rig

ROOT = rig.ROOT
# Kills every process whose command line names gpuci's watcher, but PID 1 (the init, which the
# kernel protects from its own namespace anyway), itself and its parent shell.
KILL_WATCHER = (
    "python3 -c \"import os; [os.kill(int(p), 9) for p in os.listdir('/proc') if p.isdigit() "
    "and int(p) not in (1, os.getpid(), os.getppid()) "
    "and b'gpuci-watch' in open('/proc/%s/cmdline' % p, 'rb').read()]\""
)


def hostile_area(args: argparse.Namespace) -> None:
    holder = f"python3 bench/gpu/torch_holder.py --gib {args.gib} --ignore-sigterm"
    if args.platform == "cpu":
        holder += " --cpu"
    script = f"{holder} & sleep {args.hold_s}; {KILL_WATCHER}; echo watcher-killed; wait"
    steps = [{"label": "hostile", "commands": [script], "platforms": [args.platform], "num_gpus": 0}]
    if args.platform != "cpu":
        steps[0]["num_gpus"] = 1
    (ROOT / ".buildkite" / "test_areas" / "gpu_orphan.yaml").write_text(json.dumps({"steps": steps}, indent=1))


def watchers(container: Any) -> list[str]:
    rows = [row[-1] for row in container.top(ps_args="-eo pid,args")["Processes"]]
    return [r for r in rows if r.startswith("bash -c exec 3<&0")]  # the watcher's own shell


def orphan(args: argparse.Namespace, client: Any, backend: Any, base: str, mounts: list[str]) -> dict[str, Any]:
    baseline = rig.used(backend)
    command = [sys.executable, "-m", "harness", "run", "--platform", args.platform, "--area", "gpu_orphan"]
    env = rig.gpuci_env(base, mounts)
    with open(args.out / "orphan-run.log", "w") as out:
        run = subprocess.Popen([*command, "--grace", str(args.grace)], cwd=ROOT, env=env, stdout=subprocess.PIPE)
        started = time.monotonic()
        assert run.stdout is not None
        for raw in run.stdout:
            out.write(raw.decode(errors="replace"))
            out.flush()
            if b"watcher-killed" in raw or time.monotonic() - started > 300:
                break
        [container] = client.containers.list(filters={"label": f"gpuci.supervisor-pid={run.pid}"})
        held = rig.used(backend) - baseline
        left_watchers = watchers(container)
        killed = time.monotonic()
        run.send_signal(signal.SIGKILL)  # the supervisor dies: OOM, a lost agent, `kill -9`
        run.wait()
    stopped_after = None
    while time.monotonic() - killed < 120:
        try:
            container.reload()
        except Exception:
            break
        if container.status != "running":
            break
        time.sleep(0.05)
    stopped_after = round(time.monotonic() - killed, 3)
    free_after = rig.wait_free(backend, baseline, 60) if backend else 0.0
    status, exit_code = container.status, container.attrs["State"].get("ExitCode")
    logs = container.logs()[-4000:].decode(errors="replace")
    container.remove(force=True)
    janitors = ""
    for _ in range(100):  # the janitor exits once its stop has returned
        janitors = subprocess.run(["pgrep", "-f", f"janitor.py {container.id}"], capture_output=True, text=True).stdout
        if not janitors:
            break
        time.sleep(0.1)
    return {
        "grace_s": args.grace,
        "held_bytes_when_killed": held,
        "watchers_left_in_container_when_killed": left_watchers,
        "supervisor_sigkill_to_container_stopped_s": stopped_after,
        "container_status": status,
        "container_exit_code": exit_code,
        "gpu_free_s_after_container_stopped": free_after,
        "gpu_used_after_bytes": rig.used(backend) - baseline,
        "janitors_left": len(janitors.split()),
        "container_log_tail": logs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rig.add_arguments(parser)
    parser.add_argument("--gib", type=float, default=8.0)
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument("--hold-s", type=float, default=15.0)
    args = parser.parse_args()
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "platform": args.platform}
    bench = rig.start(args, result, ("ServerVersion", "Driver", "CgroupVersion"))
    client, backend, mounts = bench.client, bench.backend, bench.mounts
    if backend is not None:
        result["gpu"] = backend.devices()[0].name
    try:
        if args.engine == "carried":
            rig.log("importing the machine's root as the base")
            base, result["base"] = rig.host_root_base(client, bench.venv)
        else:
            base = os.environ.get("GPUCI_BASE_IMAGE", "")
        image, seconds = rig.build_image(client, args.platform, base)
        result["image"] = {"tag": image.tag, "built_s": seconds}
        hostile_area(args)
        rig.log("hostile step: holds memory, kills the watcher, sleeps; then its supervisor is SIGKILLed")
        result["orphan"] = orphan(args, client, backend, base, mounts)
        rig.log(json.dumps({k: v for k, v in result["orphan"].items() if k != "container_log_tail"}))
    finally:
        (ROOT / ".buildkite" / "test_areas" / "gpu_orphan.yaml").unlink(missing_ok=True)
        (args.out / "orphan.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
